"""project/data/decode.py: torchvision decodes plain PNG/JPEG to the same pixels PIL gives.

Every fixture is a real file written with PIL; ``pil_pixels`` is load_image's PIL-only path (the
reference: what the project decoded before torchvision took plain files over).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from project.data.decode import decode_plain
from project.data.images import ImageLoadError, load_image, to_rgb


def pil_pixels(path) -> torch.Tensor:
    with Image.open(path) as image:
        image.seek(0)
        image.load()
        rgb = to_rgb(ImageOps.exif_transpose(image))
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def decoded_in_c(path) -> bool:
    """Whether load_image takes torchvision's path for this file."""
    data = bytearray(path.read_bytes())
    with Image.open(io.BytesIO(data)) as image:
        return decode_plain(data, image) is not None


def photo(width: int = 40, height: int = 30, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise: JPEG's hard case and easy case at once."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    smooth = np.stack([x * y, 1 - x, y], axis=-1) * 200
    return np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)


def write(path, image: Image.Image, **options):
    image.save(path, **options)
    return path


def plain_files(folder):
    rgb = Image.fromarray(photo())
    grey = rgb.convert("L")
    return {
        "rgb.png": write(folder / "rgb.png", rgb),
        "grey.png": write(folder / "grey.png", grey),
        "interlaced.png": write(folder / "interlaced.png", rgb, interlace=1),
        "rgb.jpg": write(folder / "rgb.jpg", rgb, quality=90),
        "grey.jpg": write(folder / "grey.jpg", grey, quality=90),
        "progressive.jpg": write(folder / "progressive.jpg", rgb, progressive=True),
        "subsampled.jpeg": write(folder / "subsampled.jpeg", rgb, subsampling=2, quality=75),
    }


def other_files(folder):
    """Files that must stay with PIL (its mode conversions define their pixels)."""
    rgb = Image.fromarray(photo())
    palette_transparent = rgb.convert("P")
    palette_transparent.info["transparency"] = 0
    opaque_trns = rgb.copy()
    sixteen = np.linspace(0, 65535, 40 * 30 * 3).reshape(30, 40, 3).astype(">u2")
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    files = {
        "rgba.png": write(folder / "rgba.png", rgb.convert("RGBA")),
        "la.png": write(folder / "la.png", rgb.convert("LA")),
        "palette.png": write(folder / "palette.png", rgb.convert("P")),
        "palette_transparent.png": write(folder / "palette_t.png", palette_transparent),
        "rgb_with_trns.png": write(folder / "trns.png", opaque_trns, transparency=(0, 0, 0)),
        "cmyk.jpg": write(folder / "cmyk.jpg", rgb.convert("CMYK")),
        "one_bit.png": write(folder / "one_bit.png", rgb.convert("1")),
        "gif.gif": write(folder / "gif.gif", rgb),
        "animated.png": write(
            folder / "apng.png", frames[0], save_all=True, append_images=frames[1:]
        ),  # fmt: skip
    }
    # 16-bit RGB PNG (PIL calls it "RGB" but keeps the high byte; torchvision gives uint16)
    path = folder / "rgb16.png"
    path.write_bytes(png_rgb16(sixteen))
    files["rgb16.png"] = path
    return files


def png_rgb16(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one), built chunk by chunk."""
    import struct
    import zlib

    height, width, _ = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + pixels[row].astype(">u2").tobytes() for row in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_plain_png_and_jpeg_are_decoded_in_c_to_the_same_pixels(tmp_path):
    for name, path in plain_files(tmp_path).items():
        assert decoded_in_c(path), name
        assert torch.equal(load_image(path), pil_pixels(path)), name


def test_every_other_mode_stays_with_pil_and_keeps_its_pixels(tmp_path):
    for name, path in other_files(tmp_path).items():
        assert not decoded_in_c(path), name
        assert torch.equal(load_image(path), pil_pixels(path)), name


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_every_exif_orientation_matches_pil(tmp_path, suffix):
    image = Image.fromarray(photo(12, 7))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = write(tmp_path / f"o{orientation}{suffix}", image, exif=exif)
        expected = pil_pixels(path)
        if orientation >= 5:  # a quarter turn: stored 12 wide, shown 7 wide
            assert expected.shape == (3, 12, 7)
        assert torch.equal(load_image(path), expected), (suffix, orientation)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_plain_file_is_still_named_by_pils_error(tmp_path, suffix):
    whole = write(tmp_path / f"whole{suffix}", Image.fromarray(photo(64, 64)))
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    with pytest.raises(ImageLoadError, match=f"truncated{suffix}: corrupt or truncated image"):
        load_image(truncated)
