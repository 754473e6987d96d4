"""What a ``POST /predict`` request may send, and how its image bytes are found in it.

Used by guard.py (the HTTP layer of ``python -m project serve``) before any request reaches the
model worker: a request is refused here with an ``UploadError`` (an HTTP status and one line naming
the problem), never inside the batch, where one bad image would fail every request batched with it.

The image may come as a multipart upload (any one file field), a raw body (``image/*`` or
``application/octet-stream``) or JSON ``{"image": "<base64>"}``. The bytes are never logged, and
nothing in a request names a file: the server reads only what the request carries.

    python -c "from project.serve.limits import image_from_body; help(image_from_body)"
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import torch

from project.data.images import ImageLoadError, decode_image_bytes

MEGABYTE = 1024 * 1024
DEFAULT_MAX_UPLOAD_MB = 4.0
# Our own pixel limit, far below PIL's (about 89 M pixels warns, 179 M refuses): a 4096 x 4096
# image is already 48 MiB of RGB in memory, and a few kilobytes of PNG can claim it.
DEFAULT_MAX_PIXELS = 4096 * 4096
RAW_TYPES = ("application/octet-stream",)


class UploadError(ValueError):
    """A request refused: ``status`` is its HTTP status, the message its one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * MEGABYTE)
    max_pixels: int = DEFAULT_MAX_PIXELS


def media_type(content_type: str) -> str:
    """``"image/png; charset=x"`` -> ``"image/png"`` (lower case)."""
    return content_type.split(";", 1)[0].strip().lower()


def check_content_type(content_type: str) -> str:
    """The media type, if /predict takes it; else UploadError 415."""
    kind = media_type(content_type)
    if kind.startswith("image/") or kind in (*RAW_TYPES, "application/json", "multipart/form-data"):
        return kind
    shown = kind or "none"
    raise UploadError(
        415,
        f"content type {shown!r} not accepted: send an image as multipart/form-data, a raw "
        'image/* or application/octet-stream body, or JSON {"image": "<base64>"}',
    )


def check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise UploadError(
            413, f"upload of {size} bytes is above the limit of {limits.max_bytes} bytes "
            "(--max_upload_mb)"
        )  # fmt: skip


def image_from_json(body: bytes) -> bytes:
    """The bytes of ``{"image": "<base64>"}``; UploadError 400 for anything else."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UploadError(400, "body is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("image"), str):
        raise UploadError(400, 'JSON body must be {"image": "<base64 of the image file>"}')
    text = document["image"]
    if text.startswith("data:") and "," in text:  # a data: URL, as a browser's FileReader gives
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(400, 'JSON field "image" is not valid base64') from None


def check_image(data: bytes, limits: Limits) -> torch.Tensor:
    """Decode ``data`` as the server will (3 x H x W uint8), or UploadError 400/413 naming why."""
    check_size(len(data), limits)
    try:
        return decode_image_bytes(data, "upload", limits.max_pixels)
    except ImageLoadError as error:
        status = 413 if "decompression bomb" in str(error) else 400
        raise UploadError(status, str(error).splitlines()[0]) from None
