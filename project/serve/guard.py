"""The HTTP layer in front of the model: ``GET /`` serves the page, ``POST /predict`` is checked.

An ASGI middleware that LitServe's server installs (``LitServer(middlewares=...)``, see cli.py).
For ``POST /predict`` it refuses, each with one line of JSON ``{"error": "<in a user's words>",
"detail": "<the precise reason>"}``:

- 408 when the body has not arrived within ``--body_timeout`` seconds (a stalled or very slow
  upload); the connection is then closed;
- 415 for a content type /predict does not take; 413 for a body above ``--max_upload_mb``;
- 400 for an empty body, a missing file field, a multipart body over its field limits, bad JSON
  or base64, not an image, a truncated image;
- 413 for an image over ``--max_side`` or ``--max_pixels`` (read from the header), a decompression
  bomb (PIL's limit), PNG text chunks that decompress too far;
- 503 when more requests than ``--max_pending`` are already being decoded or predicted (per API
  server process). A request counts from the moment its whole body has arrived: uploads still
  arriving are bounded by ``--body_timeout`` and by uvicorn's ``limit_concurrency``
  (``--max_connections``), not by ``--max_pending``, so stalled clients cannot make it refuse
  good requests.

A request that passes is decoded and preprocessed here, in a thread (the event loop keeps
answering meanwhile), and goes on to LitServe as JSON ``{"tensor": "<base64 float32>", "shape":
[3, S, S]}``: the model worker only stacks tensors and runs the network, and never sees an image
that does not decode (in a batch, one failing request would fail the whole batch).

Headers have a deadline too (``header_deadline_protocol``): uvicorn closes idle keep-alive
connections after ``timeout_keep_alive`` and bounds header size (h11's
``h11_max_incomplete_event_size``), but has no timeout for a request's headers to arrive.

    python -m project serve --ckpt_path CKPT --max_upload_mb 4 --max_pending 64 --body_timeout 10
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anyio
import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
MAX_FORM_FIELDS, MAX_FORM_FILES = 64, 16  # Starlette's defaults are 1000 each
DEFAULT_BODY_TIMEOUT = 10.0


def body_limit(kind: str, limits: Limits) -> int:
    """The most bytes a body of this media type may hold for an image of ``max_bytes``."""
    if kind == "application/json":
        return limits.max_bytes * 4 // 3 + MULTIPART_SLACK  # base64 is 4/3 the size
    if kind == "multipart/form-data":
        return limits.max_bytes + MULTIPART_SLACK
    return limits.max_bytes


async def read_body(receive, limit: int, timeout: float) -> bytes:
    """The whole request body, refused as soon as it passes ``limit`` (413) or ``timeout``
    seconds have passed since its headers (408)."""
    chunks, size = [], 0
    with anyio.move_on_after(timeout):
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
    raise UploadError(
        408, f"body incomplete after {timeout:g} s ({size} bytes arrived; --body_timeout)"
    )


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
        form = await Request(scope, replay).form(max_files=MAX_FORM_FILES,
                                                 max_fields=MAX_FORM_FIELDS)  # fmt: skip
    except Exception as error:  # python-multipart's and Starlette's parse errors vary by version
        reason = str(getattr(error, "detail", "") or error).strip().splitlines()
        shown = reason[0] if reason else type(error).__name__
        raise UploadError(400, f"multipart body could not be parsed ({shown})") from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise UploadError(400, "multipart body has no file field (send -F image=@FILE)",
                              "No image was sent.")  # fmt: skip
        return await files[0].read()
    finally:
        await form.close()


async def whole_body(scope, receive, limits: Limits, body_timeout: float) -> tuple[str, bytes]:
    """(media type, body) of a request /predict may take, read within the limits."""
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    kind = check_content_type(headers.get("content-type", ""))
    declared = headers.get("content-length", "")
    if declared.isdigit():  # refused before reading a byte of it
        if int(declared) > body_limit(kind, limits):
            check_size(int(declared), limits)
    body = await read_body(receive, body_limit(kind, limits), body_timeout)
    if not body:
        raise UploadError(400, "empty body: no image sent", "No image was sent.")
    return kind, body


async def image_from_body(scope, kind: str, body: bytes) -> bytes:
    if kind == "multipart/form-data":
        return await image_from_multipart(scope, body)
    if kind == "application/json":
        return image_from_json(body)
    assert kind.startswith("image/") or kind in RAW_TYPES
    return body


def tensor_message(tensor) -> dict:
    """What the model worker receives (api.py ``decode_request`` reads it back)."""
    array = np.ascontiguousarray(tensor.numpy(), dtype=np.float32)
    return {"tensor": base64.b64encode(array.tobytes()).decode("ascii"), "shape": list(array.shape)}


class ImageGuard:
    """ASGI middleware: the page at ``GET /``, the checks of ``POST /predict`` (see the module).

    ``transform``: the checkpoint's preprocessing (project/data/transforms.py
    ``inference_transform``), applied here so that the worker receives the network's input."""

    def __init__(self, app, limits: Limits, transform, max_pending: int = 64,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT, path: str = "/predict"):  # fmt: skip
        self.app = app
        self.limits = limits
        self.transform = transform
        self.max_pending = max_pending
        self.body_timeout = body_timeout
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
        try:
            kind, body = await whole_body(scope, receive, self.limits, self.body_timeout)
        except UploadError as error:
            return await self.refuse(error, scope, receive, send)
        if self.pending >= self.max_pending:
            error = UploadError(
                503, f"server busy: {self.pending} requests in flight (--max_pending); retry later"
            )  # fmt: skip
            return await self.refuse(error, scope, receive, send)
        self.pending += 1
        try:
            await self.checked(scope, receive, send, kind, body)
        finally:
            self.pending -= 1

    @staticmethod
    async def refuse(error: UploadError, scope, receive, send):
        # 408: the rest of the body may still be on its way; the connection cannot be reused.
        headers = {"connection": "close"} if error.status == 408 else None
        response = JSONResponse(error.body(), error.status, headers=headers)
        return await response(scope, receive, send)

    def prepare(self, data: bytes) -> dict:
        return tensor_message(self.transform(check_image(data, self.limits)))

    async def checked(self, scope, receive, send, kind: str, body: bytes):
        try:
            data = await image_from_body(scope, kind, body)
            check_size(len(data), self.limits)
            message = await anyio.to_thread.run_sync(self.prepare, data)
        except UploadError as error:
            return await self.refuse(error, scope, receive, send)
        forwarded = json.dumps(message).encode()
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(forwarded)).encode()),
        ]
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # the client's disconnect, if it comes
            sent = True
            return {"type": "http.request", "body": forwarded, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def header_deadline_protocol(seconds: float) -> type:
    """uvicorn's httptools protocol, closing a connection whose request headers have not all
    arrived ``seconds`` after it opened or after the request's first byte (an idle kept-alive
    connection is uvicorn's ``timeout_keep_alive``'s). Passed to uvicorn as ``http=`` (cli.py)."""

    class HeaderDeadline(HttpToolsProtocol):
        header_timeout = seconds
        _deadline = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(self.header_timeout, self._late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _late(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_message_begin(self) -> None:  # the next request on a kept-alive connection
            if self._deadline is None:
                self._arm()
            super().on_message_begin()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline
