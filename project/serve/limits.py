"""What a ``POST /predict`` request may send, and how its image bytes are found in it.

Used by guard.py (the HTTP layer of ``python -m project serve``) before any request reaches the
model worker: a request is refused here with an ``UploadError`` (an HTTP status, the reason in a
user's words and the precise reason for a developer), never inside the batch, where one bad image
would fail every request batched with it.

The image may come as a multipart upload (any one file field), a raw body (``image/*`` or
``application/octet-stream``) or JSON ``{"image": "<base64>"}``. The bytes are never logged, and
nothing in a request names a file: the server reads only what the request carries.

What decoding may cost is bounded before any pixel is decoded: total pixels (``--max_pixels``)
and each side (``--max_side``) read from the header, and PNG text chunks capped by Pillow's own
settings (``PngImagePlugin.MAX_TEXT_CHUNK`` / ``MAX_TEXT_MEMORY``, lowered by ``pil_limits``);
``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off, so a truncated file is refused, not half decoded.

    python -c "from project.serve.limits import check_image; help(check_image)"
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass

import torch
from PIL import Image, ImageFile, PngImagePlugin

from project.data.images import ImageLoadError, decode_image_bytes

MEGABYTE = 1024 * 1024
DEFAULT_MAX_UPLOAD_MB = 4.0
# Our own pixel limit, far below PIL's (about 89 M pixels warns, 179 M refuses): a 4096 x 4096
# image is already 48 MiB of RGB in memory, and a few kilobytes of PNG can claim it.
DEFAULT_MAX_PIXELS = 4096 * 4096
# Each side too: a 16,777,216 x 1 PNG of 16 KB is within the pixel limit, and decoding and
# resizing it cost seconds and hundreds of megabytes.
DEFAULT_MAX_SIDE = 8192
# A classifier reads no PNG text: Pillow's defaults (1 MiB per chunk, 64 MiB in all) lowered.
MAX_TEXT_CHUNK = 64 * 1024
MAX_TEXT_MEMORY = 256 * 1024
RAW_TYPES = ("application/octet-stream",)

# What a person reads (the page shows "error"); the precise reason goes in "detail".
USER_WORDS = {
    400: "This request could not be read.",
    408: "The upload took too long to arrive. Try again.",
    413: "This file is too large.",
    415: "That is not an image. Choose a PNG, JPEG, GIF, BMP or WebP file.",
    503: "The server is busy. Try again in a moment.",
}


class UploadError(ValueError):
    """A request refused: ``status`` is its HTTP status, the message its one-line precise reason
    (flags, sizes) and ``user`` the same in a user's words."""

    def __init__(self, status: int, message: str, user: str | None = None):
        super().__init__(message)
        self.status = status
        self.user = user or USER_WORDS.get(status, "This request could not be served.")

    def body(self) -> dict:
        """The JSON answer: ``{"error": <user's words>, "detail": <precise reason>}``."""
        return {"error": self.user, "detail": str(self)}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * MEGABYTE)
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE


def pil_limits() -> None:
    """Pillow's own decoder settings for uploads, in this process (``check_image`` sets them)."""
    PngImagePlugin.MAX_TEXT_CHUNK = MAX_TEXT_CHUNK
    PngImagePlugin.MAX_TEXT_MEMORY = MAX_TEXT_MEMORY
    ImageFile.LOAD_TRUNCATED_IMAGES = False


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
            "(--max_upload_mb)",
            f"This file is too large: the limit is {limits.max_bytes / MEGABYTE:g} MB.",
        )  # fmt: skip


def image_from_json(body: bytes) -> bytes:
    """The bytes of ``{"image": "<base64>"}``; UploadError 400 for anything else."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
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


def header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone; None when PIL cannot read one (then
    decode_image_bytes says why)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - any failure is reported by the full decode below
        return None


def refused_text(reason: str) -> UploadError | None:
    """PIL's text chunk refusals ("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK",
    "Too much memory used in text chunks") as a 413 that says what was refused."""
    if "MAX_TEXT_CHUNK" in reason or "decompressed data too large" in reason.lower():
        detail = f"upload: a PNG text chunk decompresses to over {MAX_TEXT_CHUNK} bytes (refused)"
    elif "Too much memory used in text chunks" in reason:
        detail = f"upload: PNG text chunks decompress to over {MAX_TEXT_MEMORY} bytes (refused)"
    else:
        return None
    return UploadError(413, detail, "This image carries too much embedded text to be read.")


def check_image(data: bytes, limits: Limits) -> torch.Tensor:
    """Decode ``data`` as the server will (3 x H x W uint8), or UploadError 400/413 naming why."""
    pil_limits()
    check_size(len(data), limits)
    size = header_size(data)
    if size is not None and max(size) > limits.max_side:
        raise UploadError(
            413, f"upload: {size[0]} x {size[1]} pixels, a side above the limit of "
            f"{limits.max_side} (--max_side)",
            f"This image is too large: no side may be over {limits.max_side} pixels.",
        )  # fmt: skip
    try:
        return decode_image_bytes(data, "upload", limits.max_pixels)
    except ImageLoadError as error:
        detail = str(error).splitlines()[0]
        text = refused_text(detail)
        if text is not None:
            raise text from None
        if "decompression bomb" in detail:
            raise UploadError(413, detail, "This image has too many pixels to be read.") from None
        if "not an image" in detail or "empty file" in detail:
            raise UploadError(400, detail, "That is not an image file that can be read.") from None
        raise UploadError(400, detail, "This image file is damaged or incomplete.") from None
