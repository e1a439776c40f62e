"""keeptrash.xmp against ExifTool, the independent reader: sidecars as darktable, digiKam, Lightroom Classic and Photo
Mechanic write them (tests/xmp_sidecars) keep every other property through a merge; XMP written into a real JPEG, a
TIFF and a DNG leaves their image data byte for byte as it was; a broken sidecar is one error naming it."""

import shutil
from pathlib import Path

import exiv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import LIVEC_IMAGES, PHOTO_NAMES
from exiftool import exiftool_write, exiftool_xmp, needs_exiftool
from keeptrash import xmp

SIDECARS = Path(__file__).parent / "xmp_sidecars"
TOOL_SIDECARS = sorted(path.name for path in SIDECARS.glob("*.xmp") if "malformed" not in path.name)
WRITTEN = {"xmp:Rating": "4", "xmp:Label": "Yellow", "digiKam:PickLabel": "3", "keeptrash:Probability": "0.83"}
# The same properties as ExifTool names and reads them.
WRITTEN_AS_EXIFTOOL_READS = {"XMP-xmp:Rating": 4, "XMP-xmp:Label": "Yellow", "XMP-digiKam:PickLabel": 3, "XMP-keeptrash:Probability": 0.83}
# ExifTool's group of a namespace where it is not the namespace's prefix.
EXIFTOOL_GROUPS = {"photomechanic": "photomech"}


@needs_exiftool
@pytest.mark.parametrize("name", TOOL_SIDECARS)
def test_a_merge_keeps_every_other_property_of_a_tools_sidecar_as_exiftool_reads_it(name, tmp_path):
    before = exiftool_xmp(SIDECARS / name)
    merged = tmp_path / name
    merged.write_bytes(xmp.merged_sidecar((SIDECARS / name).read_bytes(), WRITTEN, merged))
    after = exiftool_xmp(merged)
    others = {key: value for key, value in before.items() if key not in WRITTEN_AS_EXIFTOOL_READS and key != "XMP-x:XMPToolkit"}
    assert len(others) >= 3
    assert {key: after.get(key) for key in others} == others
    assert {key: after.get(key) for key in WRITTEN_AS_EXIFTOOL_READS} == WRITTEN_AS_EXIFTOOL_READS


@needs_exiftool
@pytest.mark.parametrize("name", TOOL_SIDECARS)
def test_properties_read_as_exiftool_reads_them_under_the_usual_prefixes(name):
    """Photo Mechanic's older sidecars say xap: for the XMP namespace: its rating still reads as xmp:Rating."""
    properties, independent = xmp.read_file(SIDECARS / name), exiftool_xmp(SIDECARS / name)
    for qualified in ("xmp:Rating", "xmpDM:pick", "digiKam:PickLabel", "photomechanic:Tagged", "photomechanic:ColorClass"):
        prefix, property_name = qualified.split(":")
        exiftool_name = f"XMP-{EXIFTOOL_GROUPS.get(prefix, prefix)}:{property_name[0].upper()}{property_name[1:]}"
        assert (qualified in properties) == (exiftool_name in independent), qualified
        if qualified in properties:
            assert str(properties[qualified]).lower() == str(independent[exiftool_name]).lower()


@needs_exiftool
def test_a_new_sidecar_uses_the_usual_prefixes_even_after_reading_one_that_declares_another(tmp_path):
    xmp.read_file(SIDECARS / "photomechanic-trash.xmp")  # declares xap: for the XMP namespace
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(xmp.merged_sidecar(None, WRITTEN, sidecar))
    assert b"xmlns:xmp=" in sidecar.read_bytes() and b"xap:" not in sidecar.read_bytes()
    assert exiftool_xmp(sidecar) == {"XMP-x:XMPToolkit": "XMP Core 4.4.0-Exiv2", **WRITTEN_AS_EXIFTOOL_READS}
    assert xmp.read_file(sidecar) == WRITTEN


@pytest.mark.parametrize(("content", "complaint"), [
    ((SIDECARS / "malformed-cut-short.xmp").read_bytes(), "not well-formed"),
    (b"", "empty"),
    (b"\x00\x01 not xmp at all", "Exiv2 cannot read"),
])
def test_a_broken_sidecar_is_one_error_naming_it(tmp_path, content, complaint):
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], tmp_path / "IMG_0001.jpg")
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(content)
    with pytest.raises(xmp.XmpError, match=complaint) as raised:
        xmp.read_properties(tmp_path / "IMG_0001.jpg")
    assert str(raised.value).startswith(f"{sidecar}: ") and "\n" not in str(raised.value)


def test_a_broken_sidecar_is_found_while_exiv2_is_muted_and_the_mute_stays(tmp_path):
    """keeptrash.raw mutes Exiv2's log for the process (the labels stage always imports it); a cut-short sidecar read as
    no XMP at all then, and its photo went unlabelled without a word."""
    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
    try:
        shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], tmp_path / "IMG_0001.jpg")
        shutil.copyfile(SIDECARS / "malformed-cut-short.xmp", tmp_path / "IMG_0001.xmp")
        with pytest.raises(xmp.XmpError, match="not well-formed"):
            xmp.read_properties(tmp_path / "IMG_0001.jpg")
        assert exiv2.LogMsg.level() == exiv2.LogMsg.Level.mute
    finally:
        exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.warn)


def test_the_sidecars_of_a_photo_in_either_naming_and_case(tmp_path):
    photo = tmp_path / "IMG_0001.CR2"
    assert xmp.existing_sidecars(photo) == []
    (tmp_path / "IMG_0001.XMP").write_bytes(b"")
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(b"")
    assert xmp.existing_sidecars(photo) == [tmp_path / "IMG_0001.XMP", tmp_path / "IMG_0001.CR2.xmp"]


@needs_exiftool
def test_a_photos_properties_are_its_embedded_xmp_overridden_by_its_sidecars(tmp_path):
    photo = tmp_path / "IMG_0001.jpg"
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], photo)
    assert xmp.read_properties(photo) == {}
    exiftool_write(photo, "-XMP-xmp:Rating=2", "-XMP-xmp:Label=Red")
    assert xmp.read_properties(photo) == {"xmp:Rating": "2", "xmp:Label": "Red"}
    shutil.copyfile(SIDECARS / "darktable-rejected.xmp", tmp_path / "IMG_0001.jpg.xmp")
    properties = xmp.read_properties(photo)
    assert properties["xmp:Rating"] == "-1" and properties["xmp:Label"] == "Red"


def _photos(folder: Path) -> dict[str, Path]:
    """A real JPEG, the same photo as a TIFF, and a DNG with its sensor data in a SubIFD, as cameras write it."""
    photo = Image.open(LIVEC_IMAGES / PHOTO_NAMES[0])
    jpeg, tiff, dng = folder / "photo.jpg", folder / "photo.tif", folder / "photo.dng"
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], jpeg)
    photo.save(tiff, compression="tiff_lzw")
    with tifffile.TiffWriter(dng) as writer:
        writer.write(np.asarray(photo.resize((160, 160))), photometric="rgb", subfiletype=1, subifds=1,
                     extratags=[(50706, "B", 4, (1, 4, 0, 0), True)])
        writer.write(np.asarray(photo.convert("L"), dtype=np.uint16) * 16, photometric=32803, subfiletype=0,
                     extratags=[(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True)])
    return {"jpeg": jpeg, "tiff": tiff, "dng": dng}


def _decoded(path: Path) -> list[np.ndarray]:
    """Every image of the file as decoded pixels: Pillow's for a JPEG, tifffile's for each TIFF page and SubIFD."""
    if path.suffix == ".jpg":
        return [np.asarray(Image.open(path))]
    with tifffile.TiffFile(path) as tiff:
        pages = list(tiff.pages)
        return [page.asarray() for page in pages] + [sub.asarray() for page in pages if page.subifds for sub in tifffile.TiffPages(page)]


@needs_exiftool
@pytest.mark.parametrize("kind", ["jpeg", "tiff", "dng"])
def test_xmp_written_into_a_photo_leaves_its_image_data_as_it_was(tmp_path, kind):
    original = _photos(tmp_path)[kind]
    written = tmp_path / f"written{original.suffix}"
    written.write_bytes(xmp.embedded(original.read_bytes(), WRITTEN, original))
    assert {key: exiftool_xmp(written).get(key) for key in WRITTEN_AS_EXIFTOOL_READS} == WRITTEN_AS_EXIFTOOL_READS
    assert all(np.array_equal(before, after) for before, after in zip(_decoded(original), _decoded(written), strict=True))
    assert xmp.image_data_digest(written.read_bytes(), original.suffix) == xmp.image_data_digest(original.read_bytes(), original.suffix)


@pytest.mark.parametrize("kind", ["jpeg", "tiff", "dng"])
def test_the_image_data_digest_sees_a_changed_byte_of_image_data_but_not_of_metadata(tmp_path, kind):
    original = _photos(tmp_path)[kind]
    data = bytearray(original.read_bytes())
    digest = xmp.image_data_digest(bytes(data), original.suffix)
    with_xmp = xmp.embedded(bytes(data), WRITTEN, original)
    assert xmp.image_data_digest(with_xmp, original.suffix) == digest
    data[len(data) // 2] ^= 0xFF  # inside the strips (TIFF, DNG) or the compressed scan (JPEG)
    assert xmp.image_data_digest(bytes(data), original.suffix) != digest


def test_a_raw_file_is_never_written_into(tmp_path):
    raw = tmp_path / "IMG_0001.CR2"
    raw.write_bytes(b"not rewritten")
    with pytest.raises(xmp.XmpError, match="JPEG, TIFF and DNG files only"):
        xmp.embedded(raw.read_bytes(), WRITTEN, raw)
