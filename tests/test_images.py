"""project/data/images.py: every colour mode becomes RGB uint8; bad files name themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from project.data.images import ImageLoadError, is_image_file, load_image, to_rgb

from .helpers import save_image


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "CMYK", "1", "I", "F"])
def test_every_mode_gives_rgb_uint8(tmp_path, mode):
    suffix = ".tiff" if mode in ("CMYK", "I", "F") else ".png"
    path = save_image(tmp_path / f"image{suffix}", mode=mode, size=(7, 5))
    with Image.open(path) as image:
        assert image.mode == mode  # the file really is in that mode
    tensor = load_image(path)
    assert tensor.dtype == torch.uint8
    assert tensor.shape == (3, 5, 7)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    tensor = load_image(path)
    assert tensor.min() == 0 and tensor.max() == 255
    # A ramp stays a ramp: about 256 distinct grey levels, not a white block from clipping.
    assert len(torch.unique(tensor[0])) > 200
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])


def test_palette_transparency_is_composited_on_black():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 255, 255, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0  # palette index 0 (white) is transparent
    assert to_rgb(image).getpixel((0, 0)) == (0, 0, 0)
    assert to_rgb(image).getpixel((1, 0)) == (10, 20, 30)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (4, 2), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).shape == (3, 4, 2)  # stored 4 wide, shown 2 wide


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.png", b""),
        ("text.jpg", b"this is not an image\n"),
    ],
)
def test_unreadable_files_raise_with_the_path(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=name):
        load_image(path)


def test_truncated_file_raises_with_the_path(tmp_path):
    path = save_image(tmp_path / "whole.jpg", size=(64, 64))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match="truncated.jpg"):
        load_image(truncated)


def test_missing_file_raises_with_the_path(tmp_path):
    with pytest.raises(ImageLoadError, match="nowhere.png"):
        load_image(tmp_path / "nowhere.png")


def test_image_extensions_are_case_insensitive_and_skip_hidden(tmp_path):
    assert is_image_file(tmp_path / "a.JPG") and is_image_file(tmp_path / "b.TiFf")
    assert not is_image_file(tmp_path / ".hidden.png")
    assert not is_image_file(tmp_path / "notes.txt")


def test_a_header_claiming_a_huge_image_is_refused_as_a_bomb(tmp_path):
    from .helpers import png_header_claiming

    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_claiming(100_000, 100_000))  # 10^10 pixels, 33 bytes on disk
    with pytest.raises(ImageLoadError, match="bomb.png: refused as a possible decompression bomb"):
        load_image(path)


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as image:
        assert image.n_frames == 2
    tensor = load_image(path)
    assert tensor[0].float().mean() > 200 and tensor[2].float().mean() < 50  # red, not blue


# Random bytes, alone or behind a real PNG/JPEG/GIF signature, as image files: load_image either
# returns an RGB uint8 tensor or raises ImageLoadError naming the file, never anything else.
SIGNATURES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(SIGNATURES), body=st.binary(max_size=2048), real=st.booleans())
def test_random_bytes_give_an_image_or_the_projects_own_error(tmp_path_factory, prefix, body, real):
    folder = tmp_path_factory.mktemp("fuzz")
    if real:  # the start of a real image, then noise: reaches deeper into the decoders
        whole = save_image(folder / "real.png", size=(9, 7)).read_bytes()
        content = whole[: len(body) % len(whole)] + body
    else:
        content = prefix + body
    path = folder / "fuzz.png"
    path.write_bytes(content)
    try:
        tensor = load_image(path)
    except ImageLoadError as error:
        assert str(error).startswith(str(path))
        return
    assert tensor.dtype == torch.uint8 and tensor.ndim == 3 and tensor.shape[0] == 3
