"""Camera-like DNG files written from real photos: a Bayer mosaic of the photo's pixels that LibRaw demosaics, the
photo as the camera's embedded JPEG preview (or none), an orientation, and the capture time in an EXIF directory, as
cameras write them. tifffile writes the TIFF structure (a SubIFD for the sensor data behind the preview), Exiv2 the EXIF."""

import datetime
import io
from pathlib import Path

import exiv2
import numpy as np
import tifffile
from PIL import Image

WHITE_LEVEL = 4095  # 12-bit sensor data
# XYZ (D65) to linear sRGB: as the DNG's ColorMatrix1, it makes LibRaw render the mosaic back in the photo's colours.
_XYZ_TO_SRGB = ((3.2406, -1.5372, -0.4986), (-0.9689, 1.8758, 0.0415), (0.0557, -0.2040, 1.0570))


def _linear(srgb: np.ndarray) -> np.ndarray:
    value = srgb / 255.0
    return np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)


def bayer_mosaic(photo: Image.Image) -> np.ndarray:
    """An RGGB mosaic of the photo's linear light, as a sensor behind a colour filter array records it."""
    rgb = np.asarray(photo.convert("RGB"), dtype=np.float32)
    rgb = _linear(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2])
    mosaic = np.empty(rgb.shape[:2], np.float32)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    return np.round(mosaic * WHITE_LEVEL).astype(np.uint16)


def _rationals(values) -> list[int]:
    return [part for value in np.ravel(values) for part in (round(value * 10000), 10000)]


def write_dng(
    photo: Image.Image, path: Path, preview_side: int | None = 1024, orientation: int = 1,
    taken: datetime.datetime | None = None,
) -> Path:
    """A DNG of the photo (stored as it is; `orientation` is the EXIF Orientation to display it by) with a JPEG preview
    of preview_side pixels on its long side (None: no preview), taken at `taken` (to the hundredth of a second)."""
    camera = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "keeptrash test camera", True),  # UniqueCameraModel
        (271, "s", 0, "keeptrash", True),
        (272, "s", 0, "test camera", True),
        (274, "H", 1, orientation, True),
        (50721, "2i", 9, _rationals(_XYZ_TO_SRGB), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
    ]
    sensor = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "I", 1, WHITE_LEVEL, True),  # WhiteLevel
    ]
    mosaic = bayer_mosaic(photo)
    plain = {"software": False, "metadata": None}
    with tifffile.TiffWriter(path) as tiff:
        if preview_side:
            preview = photo.convert("RGB")
            preview.thumbnail((preview_side, preview_side))
            encoded = io.BytesIO()
            preview.save(encoded, "JPEG", quality=90)
            # The camera's JPEG, stored as it is, in IFD0 as a reduced-resolution image; the sensor data in its SubIFD.
            tiff.write(
                iter([encoded.getvalue()]), shape=(preview.height, preview.width, 3), dtype="uint8", photometric="ycbcr",
                compression="jpeg", subsampling=(2, 2), rowsperstrip=preview.height, subfiletype=1, subifds=1,
                extratags=camera, **plain,
            )
            tiff.write(mosaic, photometric=32803, subfiletype=0, extratags=sensor, **plain)
        else:
            tiff.write(mosaic, photometric=32803, subfiletype=0, extratags=camera + sensor, **plain)
    if taken:
        write_capture_time(path, taken)
    return path


def write_capture_time(path: Path, taken: datetime.datetime) -> None:
    """DateTimeOriginal and SubSecTimeOriginal in the file's EXIF directory, where cameras put them."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    exif["Exif.Photo.DateTimeOriginal"] = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif["Exif.Photo.SubSecTimeOriginal"] = f"{taken.microsecond // 10000:02d}"
    image.writeMetadata()


def shared_data(name: str) -> Path | None:
    """../shared/data/NAME beside the repository (a worktree may sit deeper: the nearest ancestor's), None if absent."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "shared" / "data" / name).is_dir():
            return folder / "shared" / "data" / name
    return None
