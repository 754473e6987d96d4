"""The HTTP layer in front of the model: ``GET /`` serves the page, ``POST /predict`` is checked.

An ASGI middleware that LitServe's server installs (``LitServer(middlewares=...)``, see cli.py).
For ``POST /predict`` it refuses, each with one line of JSON ``{"error": "..."}``:

- 503 when more requests are already in flight than ``--max_pending`` (per API server process);
- 415 for a content type /predict does not take; 413 for a body above ``--max_upload_mb``;
- 400 for an empty body, a missing file field, bad JSON or base64, not an image, a truncated image;
- 413 for a decompression bomb (our pixel limit, then PIL's), read from the header.

A request that passes goes on to LitServe as JSON ``{"image": "<base64>"}``: the model worker then
only sees images that decode, because in a batch one failing request fails the whole batch.
Decoding here runs in a thread, so the event loop keeps answering other requests meanwhile.

    python -m project serve --ckpt_path CKPT --max_upload_mb 4 --max_pending 64
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from project.serve.limits import (
    RAW_TYPES,
    Limits,
    UploadError,
    check_content_type,
    check_image,
    check_size,
    image_from_json,
)

PAGE = Path(__file__).with_name("page.html")
MULTIPART_SLACK = 64 * 1024  # part headers and boundaries around the file


def body_limit(kind: str, limits: Limits) -> int:
    """The most bytes a body of this media type may hold for an image of ``max_bytes``."""
    if kind == "application/json":
        return limits.max_bytes * 4 // 3 + MULTIPART_SLACK  # base64 is 4/3 the size
    if kind == "multipart/form-data":
        return limits.max_bytes + MULTIPART_SLACK
    return limits.max_bytes


async def read_body(receive, limit: int) -> bytes:
    """The whole request body, refused (413) as soon as it passes ``limit``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise UploadError(400, "client disconnected before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise UploadError(
                413, f"request body above the limit of {limit} bytes (--max_upload_mb)"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def image_from_multipart(scope, body: bytes) -> bytes:
    """The first file field of a multipart body (any name: "image", "file", ...)."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, replay).form()
    except Exception as error:  # python-multipart's and Starlette's parse errors vary by version
        raise UploadError(
            400, f"multipart body could not be parsed ({type(error).__name__})"
        ) from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise UploadError(400, "multipart body has no file field (send -F image=@FILE)")
        return await files[0].read()
    finally:
        await form.close()


async def image_bytes(scope, receive, limits: Limits) -> bytes:
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    kind = check_content_type(headers.get("content-type", ""))
    declared = headers.get("content-length", "")
    if declared.isdigit():  # refused before reading a byte of it
        if int(declared) > body_limit(kind, limits):
            check_size(int(declared), limits)
    body = await read_body(receive, body_limit(kind, limits))
    if not body:
        raise UploadError(400, "empty body: no image sent")
    if kind == "multipart/form-data":
        return await image_from_multipart(scope, body)
    if kind == "application/json":
        return image_from_json(body)
    assert kind.startswith("image/") or kind in RAW_TYPES
    return body


class ImageGuard:
    """ASGI middleware: the page at ``GET /``, the checks of ``POST /predict`` (see the module)."""

    def __init__(self, app, limits: Limits, max_pending: int = 64, path: str = "/predict"):
        self.app = app
        self.limits = limits
        self.max_pending = max_pending
        self.path = path
        self.pending = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            response = HTMLResponse(PAGE.read_text(encoding="utf-8"))
            return await response(scope, receive, send)
        if scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if self.pending >= self.max_pending:
            message = f"server busy: {self.pending} requests in flight (--max_pending); retry later"
            return await JSONResponse({"error": message}, 503)(scope, receive, send)
        self.pending += 1
        try:
            await self.checked(scope, receive, send)
        finally:
            self.pending -= 1

    async def checked(self, scope, receive, send):
        try:
            data = await image_bytes(scope, receive, self.limits)
            check_size(len(data), self.limits)
            await anyio.to_thread.run_sync(check_image, data, self.limits)
        except UploadError as error:
            return await JSONResponse({"error": str(error)}, error.status)(scope, receive, send)
        body = json.dumps({"image": base64.b64encode(data).decode("ascii")}).encode()
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # the client's disconnect, if it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)
