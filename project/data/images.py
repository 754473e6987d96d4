"""Open one image file and return it as an RGB uint8 tensor, or raise an error that names the file.

Every image the project reads (training, validation, prediction, the data check) goes through
``load_image`` so that EXIF orientation, colour-mode conversion and error messages are the same
everywhere. Try it:

    python -c "from project.data.images import load_image; print(load_image('x.png').shape)"
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from project.core.errors import InputError
from project.data.decode import decode_plain

# Matched case-insensitively: "photo.JPG" is an image too.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


class ImageLoadError(InputError, RuntimeError):
    """An image file could not be read. The message always starts with the file's path."""


def is_hidden(name: str) -> bool:
    # ".DS_Store", ".ipynb_checkpoints", "._foo.png" (macOS resource forks) are never data.
    return name.startswith(".")


def is_image_file(path: Path) -> bool:
    """True for a visible file whose extension is one of IMAGE_EXTENSIONS."""
    return not is_hidden(path.name) and path.suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without losing what the image shows.

    - 16/32-bit integer and float greyscale ("I;16", "I", "F") are *scaled* to 0..255; PIL's own
      convert("L") would clip every value above 255 and turn most 16-bit images white.
    - Modes with transparency (RGBA, LA, P with a transparent colour) are composited on black, the
      same background for every file, instead of dropping alpha and showing whatever colour the
      transparent pixels happen to store.
    - CMYK, YCbCr, 1-bit and the rest go through PIL's converters.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            array = array / 65535.0  # the full 16-bit range maps to the full 8-bit range
        else:
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low) if high > low else np.zeros_like(array)
        grey = Image.fromarray(np.round(array * 255.0).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path) -> torch.Tensor:
    """Read ``path`` into a 3 x H x W uint8 tensor (RGB, EXIF orientation applied).

    Plain 8-bit RGB or greyscale PNG/JPEG files are decoded by torchvision (project/data/decode.py,
    the same pixels, faster); every other file by PIL and ``to_rgb``.

    Raises ImageLoadError naming the file for a missing, empty, corrupt or truncated file, a file
    that is not an image, and a "decompression bomb" (PIL's size limit stays on, and its warning
    is turned into an error here rather than globally).
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:  # read once: PIL parses the header, torchvision decodes
            data = bytearray(file.read())
    except FileNotFoundError as error:
        raise ImageLoadError(f"{path}: file not found") from error
    return decode_image_bytes(data, str(path))


def decode_image_bytes(
    data: bytes | bytearray, name: str, max_pixels: int | None = None
) -> torch.Tensor:
    """``load_image`` for bytes already in memory (an upload to ``python -m project serve``).

    ``name`` starts every error message. ``max_pixels``: refuse an image with more pixels than
    this, read from its header before any decoding (a limit of our own, below PIL's).
    """
    data = bytearray(data)  # torch.frombuffer needs a writable buffer
    if not data:
        raise ImageLoadError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # the header only, and the bomb check
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageLoadError(
                        f"{name}: refused as a possible decompression bomb ({width} x {height} "
                        f"pixels, more than the limit of {max_pixels})"
                    )
                plain = decode_plain(data, image)  # plain RGB/grey PNG or JPEG: in C (decode.py)
                if plain is not None:
                    return plain
                image.seek(0)  # animated GIF/WebP: the first frame
                image.load()  # decode now, inside the try, so truncated files fail here
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
    except UnidentifiedImageError as error:
        raise ImageLoadError(f"{name}: not an image file PIL can read") from error
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        message = f"{name}: refused as a possible decompression bomb ({error})"
        raise ImageLoadError(message) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{name}: corrupt or truncated image ({error})") from error
    # HWC uint8 -> CHW uint8; torchvision.transforms.v2 works on this layout directly.
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()
