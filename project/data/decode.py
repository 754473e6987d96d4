"""Decode plain PNG and JPEG files in C (torchvision.io), and leave every other file to PIL.

``project/data/images.py`` opens every file with PIL first: that only reads the header (mode, size,
format), and keeps PIL's decompression-bomb check. When the header says the file is a plain 8-bit
RGB or greyscale PNG/JPEG, ``decode_plain`` decodes it with ``torchvision.io.decode_image``
(libjpeg-turbo / libpng, straight into a uint8 tensor, EXIF orientation applied), which is faster
than PIL's decode plus the PIL -> numpy -> tensor copy (benchmarks/decode_speed.py). Every other
file goes through PIL as before: CMYK, 16-bit, palette, transparency, animation and the other
formats, whose conversion to RGB the project defines in ``images.to_rgb``.

The pixels are the same either way: tests/test_decode.py compares both paths on every fixture.
When torchvision cannot decode a file (truncated, corrupt), ``decode_plain`` returns None and PIL
decodes it, so error messages stay PIL's, the same as before this module existed.

    python -c "from project.data.images import load_image; print(load_image('x.jpg').shape)"
"""

from __future__ import annotations

import warnings

import torch
from PIL import Image

try:  # deprecated since torchvision 0.29 in favour of TorchCodec; PIL decodes all if it goes
    from torchvision.io import ImageReadMode, decode_image
except ImportError:  # pragma: no cover - a future torchvision
    decode_image = None

# What torchvision decodes exactly like PIL + images.to_rgb: 8-bit, no alpha, one frame.
PLAIN_FORMATS = frozenset({"PNG", "JPEG"})
PLAIN_MODES = frozenset({"RGB", "L"})


def is_plain(image: Image.Image) -> bool:
    """True for a PNG/JPEG whose header says 8-bit RGB or greyscale, opaque, a single frame.

    PIL reports 16-bit RGB PNGs as "RGB" too; ``decode_plain`` catches those by the tensor's dtype.
    Palette ("P"), alpha (RGBA, LA, a tRNS chunk), CMYK and animated files (APNG) are not plain.
    MPO (a camera's multi-picture JPEG) has its own PIL format name, so it is not plain either.
    """
    return (
        image.format in PLAIN_FORMATS
        and image.mode in PLAIN_MODES
        and "transparency" not in image.info
        and not getattr(image, "is_animated", False)
    )


def decode_plain(data: bytearray, image: Image.Image) -> torch.Tensor | None:
    """The 3 x H x W uint8 RGB tensor of a plain file (``is_plain``), or None to let PIL decode.

    ``data`` is the whole file, ``image`` its PIL header (opened, not yet decoded).
    """
    if decode_image is None or not is_plain(image):
        return None
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 warns on every call that TorchCodec will take over its decoders.
            warnings.simplefilter("ignore", DeprecationWarning)
            tensor = decode_image(
                torch.frombuffer(data, dtype=torch.uint8),
                mode=ImageReadMode.RGB,  # greyscale is repeated into 3 channels, as PIL's convert
                apply_exif_orientation=True,  # as ImageOps.exif_transpose
            )
    except RuntimeError:  # truncated or corrupt: PIL decodes it again and names the problem
        return None
    if tensor.dtype != torch.uint8 or tensor.shape[0] != 3:  # a 16-bit PNG: PIL scales it
        return None
    return tensor
