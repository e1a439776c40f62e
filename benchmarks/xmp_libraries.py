"""Which XMP library keeptrash.xmp uses: python-exiv2 (PyPI exiv2) against pyexiv2, both bindings of libexiv2.

Run from the repo root (needs ExifTool, the independent reader, and pyexiv2, which keeptrash itself does not use:
`pip install pyexiv2==2.16.0`):
    python benchmarks/xmp_libraries.py [--repeats 20]

1. speed:     read a sidecar, set keeptrash's properties, serialise, write it back; ms per sidecar (median over the
              sidecars of tests/xmp_sidecars, as darktable, digiKam, Lightroom and Photo Mechanic write them).
2. merge:     ExifTool's reading of every other property of each sidecar, before and after: how many changed or went.
3. namespace: a property in keeptrash's own namespace, registered at run time, as ExifTool reads it back.
4. new:       a sidecar written from nothing (a photo without one).
5. embed:     the properties written into a JPEG, a TIFF and a DNG in memory; ExifTool's hash of the image data
              (ImageDataHash) before and after.
"""

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import exiv2
import numpy as np
import pyexiv2
import tifffile
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIDECARS = sorted(path for path in (REPO / "tests" / "xmp_sidecars").glob("*.xmp") if "malformed" not in path.name)
PHOTO = REPO / "data" / "sample" / "livec" / "images" / "100.jpg"
NAMESPACE, PREFIX = "https://keeptrash.invalid/xmp/benchmark/", "keeptrashbench"
WRITTEN = {
    "Xmp.xmp.Rating": "4",
    "Xmp.xmp.Label": "Yellow",
    "Xmp.digiKam.PickLabel": "3",
    f"Xmp.{PREFIX}.Probability": "0.83",
}
# ExifTool's names of what is written (its group XMP-<prefix>, property names capitalised).
WRITTEN_BY_EXIFTOOL = {"XMP-xmp:Rating": "4", "XMP-xmp:Label": "Yellow", "XMP-digiKam:PickLabel": "3", f"XMP-{PREFIX}:Probability": "0.83"}


def python_exiv2_merge(packet: bytes | None, properties: dict[str, str]) -> bytes:
    image = exiv2.ImageFactory.open(packet) if packet else exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    image.readMetadata()
    data = image.xmpData()
    for key, value in properties.items():
        data[key] = value
    image.writeMetadata()
    with image.io().mmap() as view:
        return bytes(view)


def pyexiv2_merge(packet: bytes | None, properties: dict[str, str]) -> bytes:
    with pyexiv2.ImageData(packet or b"") as image:  # no image type for a new sidecar: fails on b""
        image.modify_xmp(properties)
        return image.get_bytes()


def python_exiv2_register() -> None:
    exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)


def pyexiv2_register() -> None:
    pyexiv2.registerNs(NAMESPACE, PREFIX)


LIBRARIES = {
    f"python-exiv2 {exiv2.__version__} (libexiv2 {exiv2.version()})": (python_exiv2_merge, python_exiv2_register),
    f"pyexiv2 {pyexiv2.__version__}": (pyexiv2_merge, pyexiv2_register),
}


def exiftool_read(path: Path, *arguments: str) -> dict:
    result = subprocess.run(["exiftool", "-j", "-G1", "-struct", "-n", *arguments, str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)[0]


def xmp_properties(path: Path) -> dict:
    return {key: value for key, value in exiftool_read(path, "-XMP:all").items() if key.startswith("XMP-")}


def speed(merge, folder: Path, repeats: int) -> float:
    """Median ms for one sidecar: read the file, merge, write the file."""
    times = []
    for _ in range(repeats):
        for source in SIDECARS:
            target = folder / source.name
            shutil.copyfile(source, target)
            start = time.perf_counter()
            target.write_bytes(merge(target.read_bytes(), WRITTEN))
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def merge_damage(merge, folder: Path) -> tuple[int, int, list[str]]:
    """(properties compared, properties changed or lost, examples) over every sidecar."""
    compared, damaged, examples = 0, 0, []
    for source in SIDECARS:
        target = folder / source.name
        target.write_bytes(merge(source.read_bytes(), WRITTEN))
        before, after = xmp_properties(source), xmp_properties(target)
        for key, value in before.items():
            if key in WRITTEN_BY_EXIFTOOL or key.endswith(":XMPToolkit"):
                continue
            compared += 1
            if after.get(key) != value:
                damaged += 1
                examples.append(f"{source.name} {key}: {value!r} -> {after.get(key)!r}")
    return compared, damaged, examples


def written_back(merge, folder: Path, packet: bytes | None) -> str:
    target = folder / "written.xmp"
    try:
        target.write_bytes(merge(packet, WRITTEN))
    except Exception as error:  # noqa: BLE001 - what the library raises is the finding
        return f"fails: {error}".replace("\n", " ")
    found = {key: str(value) for key, value in xmp_properties(target).items() if key in WRITTEN_BY_EXIFTOOL}
    return "yes" if found == WRITTEN_BY_EXIFTOOL else f"ExifTool reads {found}"


def test_images(folder: Path) -> dict[str, Path]:
    """A real JPEG, the same photo as a TIFF, and a DNG (its sensor data in a SubIFD, as cameras write it)."""
    photo = Image.open(PHOTO)
    jpeg, tiff, dng = folder / "photo.jpg", folder / "photo.tif", folder / "photo.dng"
    shutil.copyfile(PHOTO, jpeg)
    photo.save(tiff, compression="tiff_lzw")
    mosaic = np.asarray(photo.convert("L"), dtype=np.uint16) * 16
    camera = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "keeptrash benchmark", True)]
    with tifffile.TiffWriter(dng) as writer:
        writer.write(np.asarray(photo.resize((160, 160))), photometric="rgb", subfiletype=1, subifds=1, extratags=camera)
        writer.write(mosaic, photometric=32803, subfiletype=0,
                     extratags=[(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True)])
    return {"JPEG": jpeg, "TIFF": tiff, "DNG": dng}


def image_data_hash(path: Path) -> str:
    return exiftool_read(path, "-api", "ImageHashType=SHA256", "-ImageDataHash").get("File:ImageDataHash", "none")


def embed(merge, images: dict[str, Path], folder: Path) -> dict[str, str]:
    results = {}
    for kind, photo in images.items():
        target = folder / f"embedded{photo.suffix}"
        try:
            target.write_bytes(merge(photo.read_bytes(), WRITTEN))
        except Exception as error:  # noqa: BLE001
            results[kind] = f"fails: {error}".replace("\n", " ")
            continue
        same = image_data_hash(photo) == image_data_hash(target)
        rating = xmp_properties(target).get("XMP-xmp:Rating")
        results[kind] = f"{'identical' if same else 'CHANGED'} image data, Rating {rating}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not shutil.which("exiftool"):
        sys.exit("needs ExifTool (Debian: libimage-exiftool-perl)")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        images = test_images(folder)
        for name, (merge, register) in LIBRARIES.items():
            register()
            compared, damaged, examples = merge_damage(merge, folder)
            print(f"## {name}")
            print(f"- ms per sidecar (read, merge, write; median of {len(SIDECARS)} sidecars x {args.repeats}): "
                  f"{speed(merge, folder, args.repeats):.2f}")
            print(f"- merge: {damaged} of {compared} other properties changed or lost {examples[:3]}")
            print(f"- custom namespace read back by ExifTool: {written_back(merge, folder, SIDECARS[0].read_bytes())}")
            print(f"- new sidecar from nothing: {written_back(merge, folder, None)}")
            for kind, result in embed(merge, images, folder).items():
                print(f"- embed into {kind}: {result}")
            print()


if __name__ == "__main__":
    main()
