"""``python -m project serve`` (project/serve/): the server as a real process on a free port, real
HTTP with httpx, real digit PNGs and the shared 2-epoch checkpoint; the request checks in process.

    .venv/bin/python -m pytest tests/test_serve.py -q
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from project.data.transforms import inference_transform
from project.serve.api import tensor_from_message
from project.serve.cli import main as serve_main
from project.serve.guard import ImageGuard
from project.serve.limits import (
    MAX_TEXT_CHUNK,
    Limits,
    UploadError,
    check_content_type,
    check_image,
)

from .helpers import BOUND_SECONDS, REPO, kill_group, png_header_claiming, tail, wait_for

MB = 1024 * 1024


def png_bytes(size=(8, 8), colour=0) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------- in process


def wide_png(width: int = 16_777_216) -> bytes:
    """A PNG of ``width`` x 1 black pixels: 16 KB on disk, within the default pixel limit."""
    buffer = io.BytesIO()
    Image.new("L", (width, 1)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_with_text_bomb(expanded: int = 16 * MB, before_pixels: bool = True) -> bytes:
    """An 8 x 8 PNG with a zTXt chunk that decompresses to ``expanded`` bytes (before or after
    the pixel data)."""
    packer, zeros = zlib.compressobj(9), bytes(MB)
    compressed = b"".join(packer.compress(zeros) for _ in range(expanded // MB)) + packer.flush()
    body = b"Comment\0\0" + compressed
    kind = b"zTXt"
    chunk = (struct.pack(">I", len(body)) + kind + body
             + struct.pack(">I", zlib.crc32(kind + body)))  # fmt: skip
    image = png_bytes((8, 8), 200)
    cut = image.index(b"IDAT") - 4 if before_pixels else image.index(b"IEND") - 4
    return image[:cut] + chunk + image[cut:]


def test_check_image_refuses_each_bad_upload_with_its_reason():
    limits = Limits(max_bytes=MB, max_pixels=100 * 100, max_side=60)
    assert check_image(png_bytes((10, 10), 255), limits).shape == (3, 10, 10)
    cases = {
        b"": (400, "empty file"),
        b"not an image at all": (400, "not an image file"),
        png_bytes((50, 50), 7)[:60]: (400, "truncated"),
        png_header_claiming(101, 100): (413, "101 x 100 pixels"),  # our own limit, from the header
        png_header_claiming(61, 2): (413, "a side above the limit of 60 (--max_side)"),
        b"x" * (MB + 1): (413, "above the limit"),
    }
    for data, (status, words) in cases.items():
        with pytest.raises(UploadError) as refused:
            check_image(data, limits)
        assert refused.value.status == status and words in str(refused.value), refused.value
        assert "\n" not in str(refused.value) and "--" not in refused.value.user


def test_pil_bomb_limit_applies_without_ours():
    # 20000 x 20000 = 400 M pixels: above twice PIL's MAX_IMAGE_PIXELS, refused from the header.
    with pytest.raises(UploadError) as refused:
        check_image(png_header_claiming(20000, 20000),
                    Limits(max_bytes=MB, max_pixels=10**12, max_side=10**6))  # fmt: skip
    assert refused.value.status == 413 and "decompression bomb" in str(refused.value)


def test_costly_decodes_are_refused_before_decoding(monkeypatch):
    """The 16,777,216 x 1 PNG (within the pixel limit: 3.6 s and ~400 MB to decode before) is
    refused from its header by --max_side, before the decoder runs; a PNG text chunk that
    decompresses to 16 MB (400 MB is refused alike, after the same 64 KB) is refused by Pillow's
    MAX_TEXT_CHUNK (set by pil_limits) as what it is. After the pixel data, the decoder stops at
    the pixels and never expands it: the image is served."""
    import project.serve.limits as limits_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image that its header should have refused")

    wide = wide_png()
    with monkeypatch.context() as patch:
        patch.setattr(limits_module, "decode_image_bytes", no_decoding)
        with pytest.raises(UploadError) as refused:
            check_image(wide, Limits())
    assert refused.value.status == 413 and "16777216 x 1" in str(refused.value)
    with pytest.raises(UploadError) as refused:
        check_image(png_with_text_bomb(), Limits())
    assert refused.value.status == 413, refused.value
    assert f"text chunk decompresses to over {MAX_TEXT_CHUNK} bytes" in str(refused.value)
    assert check_image(png_with_text_bomb(before_pixels=False), Limits()).shape == (3, 8, 8)


def test_content_types():
    for accepted in ("image/png", "IMAGE/JPEG; q=1", "application/octet-stream",
                     "application/json", "multipart/form-data; boundary=x"):  # fmt: skip
        check_content_type(accepted)
    for refused in ("text/plain", "", "application/x-www-form-urlencoded"):
        with pytest.raises(UploadError) as error:
            check_content_type(refused)
        assert error.value.status == 415


SETTINGS = {"image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3}


def guarded_client(app, max_pending=64) -> httpx.AsyncClient:
    guard = ImageGuard(app, Limits(max_bytes=64 * 1024, max_pixels=256 * 256, max_side=256),
                       inference_transform(SETTINGS), max_pending)  # fmt: skip
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://t")


async def echo_app(scope, receive, send):
    """Stands in for LitServe: answers with the shape of the tensor the guard passed on."""
    message = await receive()
    payload = json.loads(message["body"])
    shape = list(tensor_from_message(payload).shape)
    body = json.dumps({"shape": shape}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def assert_refusal(response, status: int) -> None:
    """One line of JSON: the user's words in "error", the precise reason in "detail"."""
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "detail"} and "\n" not in response.text


def test_guard_passes_each_form_of_upload_and_refuses_bad_ones():
    image = png_bytes((20, 20), 128)

    async def run():
        async with guarded_client(echo_app) as client:
            good = [
                await client.post("/predict", files={"file": ("a.png", image, "image/png")}),
                await client.post("/predict", content=image, headers={"content-type": "image/png"}),
                await client.post("/predict", json={"image": base64.b64encode(image).decode()}),
            ]
            bad = {
                415: await client.post(
                    "/predict", content=image, headers={"content-type": "text/plain"}
                ),  # fmt: skip
                413: await client.post(
                    "/predict", content=b"x" * 70000, headers={"content-type": "image/png"}
                ),  # fmt: skip
                400: await client.post("/predict", json={"image": "%%%"}),
            }
            nofile = await client.post("/predict", data={"name": "x"}, files={"a": ("", b"")})
            page = await client.get("/")
            return good, bad, nofile, page

    good, bad, nofile, page = asyncio.run(run())
    assert [r.json() for r in good] == [{"shape": [3, 8, 8]}] * 3
    for status, response in bad.items():
        assert_refusal(response, status)
    assert_refusal(nofile, 400)
    assert page.status_code == 200 and "<canvas" in page.text


def test_guard_answers_503_over_max_pending_then_serves_again():
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await echo_app(scope, receive, send)

    async def run():
        async with guarded_client(slow_app, max_pending=2) as client:
            post = lambda: client.post("/predict", content=png_bytes(),  # noqa: E731
                                       headers={"content-type": "image/png"})  # fmt: skip
            held = [asyncio.create_task(post()) for _ in range(2)]
            while client._transport.app.pending < 2:  # both inside the guard, waiting
                await asyncio.sleep(0.01)
            refused = await asyncio.wait_for(post(), BOUND_SECONDS)  # a hang is a failure
            release.set()
            return refused, await asyncio.gather(*held), await post()

    refused, held, after = asyncio.run(run())
    assert_refusal(refused, 503)
    assert "--max_pending" in refused.json()["detail"]
    assert [r.status_code for r in held] == [200, 200] and after.status_code == 200


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def multipart(fields: list[tuple[str, bytes, bool]], boundary: str = "b0und") -> bytes:
    """A multipart body by hand: (name, content, is a file) per part, names may repeat."""
    parts = []
    for name, content, is_file in fields:
        filename = f'; filename="{name}.png"' if is_file else ""
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}'
                     f"\r\n\r\n".encode() + content + b"\r\n")  # fmt: skip
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
BODIES = st.one_of(
    st.tuples(st.just("application/json"), st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        JSON_VALUES.map(lambda v: json.dumps({"image": v}).encode()),
        st.integers(1, 100_000).map(nested),
        st.integers(1, 6000).map(lambda n: b'{"image": ' + b"9" * n + b"}"),
        st.binary(max_size=200),
    )),
    st.tuples(st.just("multipart/form-data; boundary=b0und"), st.one_of(
        st.integers(1, 3000).map(lambda n: multipart([(f"f{i}", b"x", False) for i in range(n)])),
        st.integers(1, 100).map(lambda n: multipart([("image", b"not png", True)] * n)),
        st.lists(st.tuples(st.sampled_from(["image", "file", "a"]), st.binary(max_size=40),
                           st.booleans()), max_size=8).map(multipart),
        st.binary(max_size=300),
    )),
    st.tuples(st.sampled_from(["image/png", "application/octet-stream", "image/jpeg"]),
              st.binary(max_size=300)),
    st.tuples(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
              st.binary(max_size=100)),  # any content type a client can send (ASCII)
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(BODIES, min_size=1, max_size=4))
def test_any_body_is_a_4xx_json_line_and_the_guard_goes_on(bodies):
    """Random bodies of every content type (nested JSON 100,000 deep, 6,000-digit numbers, JSON of
    any type, multipart with 3,000 fields or 100 duplicate files, garbage): never a 5xx (the
    ASGI transport raises what the guard raises), always one JSON line, and a good image after."""

    async def run():
        async with guarded_client(echo_app) as client:
            answers = [await client.post("/predict", content=body,
                                         headers={"content-type": kind})  # fmt: skip
                       for kind, body in bodies]  # fmt: skip
            good = await client.post("/predict", content=png_bytes(),
                                     headers={"content-type": "image/png"})  # fmt: skip
            return answers, good

    answers, good = asyncio.run(run())
    for response in answers:
        assert response.status_code < 500, response.text
        if response.status_code != 200:  # a random body can be a valid image, rarely
            assert 400 <= response.status_code < 500
            assert_refusal(response, response.status_code)
    assert good.status_code == 200


def test_bad_checkpoint_is_one_line_and_status_2(tmp_path, capsys):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert serve_main(["--ckpt_path", str(bad)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and str(bad) in line and "\n" not in line
    assert serve_main(["--ckpt_path", str(tmp_path / "missing.ckpt")]) == 2
    assert serve_main(["--ckpt_path", str(bad), "--body_timeout", "0"]) == 2
    assert "--body_timeout must be above 0" in capsys.readouterr().err


def test_half_precision_follows_the_checkpoint(tmp_path):
    """--precision auto: float32 on the CPU whatever the checkpoint; on CUDA the half type its
    weights are stored in, or float16 where a GradScaler state says 16-mixed."""
    from project.serve.api import serving_dtype

    def write(name, dtype, extra=None):
        path = tmp_path / name
        torch.save({"state_dict": {"w": torch.zeros(2, dtype=dtype)}, **(extra or {})}, path)
        return str(path)

    fp32, bf16 = write("fp32.ckpt", torch.float32), write("bf16.ckpt", torch.bfloat16)
    scaled = write("mixed.ckpt", torch.float32, {"MixedPrecision": {"scale": 1.0}})
    assert [serving_dtype("auto", p, "cpu") for p in (fp32, bf16, scaled)] == [torch.float32] * 3
    assert serving_dtype("auto", fp32, "cuda:0") == torch.float32
    assert serving_dtype("auto", bf16, "cuda:0") == torch.bfloat16
    assert serving_dtype("auto", scaled, "cuda:0") == torch.float16
    assert serving_dtype("16", fp32, "cpu") == torch.float16
    assert serving_dtype("auto", None, "cuda:0") == torch.float32  # an ONNX file: as exported


# ---------------------------------------------------------------------------- a real server

BODY_TIMEOUT, SHUTDOWN_TIMEOUT = 6, 1.5  # the fixture server's --body_timeout, --shutdown_timeout


def start_server(
    checkpoint: Path, log: Path, *options: str, model_flag: str = "--ckpt_path"
) -> tuple[subprocess.Popen, str]:
    """``python -m project serve`` on a free port, in a session of its own (so that its process
    group holds every process it starts), once /health answers. ``model_flag``: ``--onnx`` to
    serve an ONNX file instead of a checkpoint."""
    port = free_port()
    command = [sys.executable, "-m", "project", "serve", model_flag, str(checkpoint),
               "--port", str(port), *options]  # fmt: skip
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, process, log, poll=0.2)
    except BaseException:
        kill_group(process)
        raise
    return process, url


@pytest.fixture(scope="module")
def server(fitted, tmp_path_factory):
    """The server on the shared checkpoint; stopped by test_sigterm_..., else killed here."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    process, url = start_server(
        fitted["best"], log, "--max_batch_size", "8", "--max_upload_mb", "1",
        "--body_timeout", str(BODY_TIMEOUT), "--header_timeout", str(BODY_TIMEOUT),
        "--shutdown_timeout", str(SHUTDOWN_TIMEOUT),
    )  # fmt: skip
    try:
        yield {"url": url, "port": int(url.rsplit(":", 1)[1]), "process": process, "log": log}
    finally:
        if process.poll() is None:
            kill_group(process)


def digit_files(root: Path, per_class: int) -> list[tuple[str, Path]]:
    return [(folder.name, path) for folder in sorted(p for p in root.iterdir() if p.is_dir())
            for path in sorted(folder.glob("*.png"))[:per_class]]  # fmt: skip


BAD_REQUESTS = {  # name: (status, request keyword arguments, words the error names)
    "not an image": (400, {"content": b"hello", "headers": {"content-type": "image/png"}},
                     "not an image"),
    "empty body": (400, {"content": b"", "headers": {"content-type": "image/png"}}, "empty"),
    "wrong content type": (415, {"content": b"x", "headers": {"content-type": "text/plain"}},
                           "content type"),
    "too large": (413, {"content": b"x" * (MB + 1), "headers": {"content-type": "image/png"}},
                  "above the limit"),
    "bomb": (413, {"content": png_header_claiming(5000, 5000),
                   "headers": {"content-type": "image/png"}}, "decompression bomb"),
    "bad base64": (400, {"json": {"image": "***"}}, "base64"),
}  # fmt: skip


@pytest.mark.slow
def test_server_answers_concurrent_good_and_bad_requests(server, digits_root):
    files = digit_files(digits_root, per_class=3)
    whole = files[0][1].read_bytes()
    truncated = whole[: len(whole) * 2 // 3]  # the header reads, the pixels stop short
    forms = [  # each good image in one of the three forms, in turn
        lambda data: {"files": {"image": ("d.png", data, "image/png")}},
        lambda data: {"content": data, "headers": {"content-type": "image/png"}},
        lambda data: {"json": {"image": base64.b64encode(data).decode()}},
    ]
    bad = {**BAD_REQUESTS, "truncated": (400, {"content": truncated,
                                               "headers": {"content-type": "image/png"}},
                                         "truncated")}  # fmt: skip

    async def run():
        async with httpx.AsyncClient(base_url=server["url"], timeout=BOUND_SECONDS) as client:
            good = [client.post("/predict", **forms[i % 3](path.read_bytes()))
                    for i, (_, path) in enumerate(files)]  # fmt: skip
            wrong = [client.post("/predict", **kwargs) for _, kwargs, _ in bad.values()]
            answers = await asyncio.gather(*good, *wrong)
            after = await client.post("/predict", content=files[-1][1].read_bytes(),
                                      headers={"content-type": "image/png"})  # fmt: skip
            return answers[: len(good)], answers[len(good) :], after

    good, wrong, after = asyncio.run(run())
    right = 0
    for (label, path), response in zip(files, good, strict=True):
        assert response.status_code == 200, (path, response.text)
        top = response.json()["top_k"]
        assert len(top) == 5 and 0 < sum(item["probability"] for item in top) <= 1 + 1e-5
        assert top == sorted(top, key=lambda item: -item["probability"])
        right += top[0]["class"] == label
    assert right >= 0.8 * len(files), f"{right} of {len(files)} digits right"
    for (name, (status, _, words)), response in zip(bad.items(), wrong, strict=True):
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["detail"], (name, response.text)
        assert_refusal(response, status)
    assert after.status_code == 200
    assert "hello" not in server["log"].read_text()  # uploaded bytes never reach the log


STALLED_UPLOAD = (
    b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
    b"Content-Length: 1000\r\n\r\n\x89PNG\r\n\x1a\n\0\0"
)  # 10 of 1000 bytes
STALLED_HEADERS = b"POST /predict HTTP/1.1\r\nHost: t\r\n"  # and never the blank line


def hold(port: int, first_bytes: bytes) -> socket.socket:
    """A connection that sends ``first_bytes`` and then nothing."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=BOUND_SECONDS)
    connection.sendall(first_bytes)
    return connection


def until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends on ``connection`` until it closes it."""
    received = b""
    with connection:
        while chunk := connection.recv(65536):
            received += chunk
    return received


def nothing_received_yet(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) is None
    except BlockingIOError:
        return True
    finally:
        connection.setblocking(True)


@pytest.mark.slow
def test_stalled_clients_do_not_hold_the_server(server, digits_root):
    """64 uploads that declare 1000 bytes and send 10 (as many as --max_pending, 64 by default)
    and 4 connections that never finish their headers: a good request is answered while every
    one of them is still held; then each stalled upload gets a 408 line and its connection
    closed (--body_timeout), and each stalled header is closed without an answer."""
    uploads = [hold(server["port"], STALLED_UPLOAD) for _ in range(64)]
    headers = [hold(server["port"], STALLED_HEADERS) for _ in range(4)]
    image = digit_files(digits_root, per_class=1)[0][1].read_bytes()
    began = time.monotonic()
    good = httpx.post(server["url"] + "/predict", content=image,
                      headers={"content-type": "image/png"}, timeout=BOUND_SECONDS)  # fmt: skip
    answered_in = time.monotonic() - began
    held = sum(nothing_received_yet(connection) for connection in uploads + headers)
    assert good.status_code == 200, good.text
    assert held == 68, f"{68 - held} stalled clients were answered first ({answered_in:.2f} s)"
    for connection in uploads:
        answer = until_closed(connection)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b"connection: close" in head.lower(), head
        detail = json.loads(body)["detail"]
        assert "--body_timeout" in detail and "10 bytes arrived" in detail, detail
    for connection in headers:
        assert until_closed(connection) == b""
    print(f"good request answered in {answered_in:.3f} s with 68 stalled clients held")


def server_processes(server) -> list[int]:
    """The server and its children (the API server, the model worker, LitServe's manager)."""
    group = server["process"].pid
    return [int(member.split()[0]) for member in group_members(group)]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.mark.slow
def test_costly_images_are_refused_with_bounded_memory(server):
    """Eight 16,777,216 x 1 PNGs and eight text-chunk bombs at once (before: 21 s and 1.26 GB for
    the eight wide ones): each a 413 naming what was refused, and no process of the server
    reaches a higher peak of memory than 64 MiB above the one it had."""
    before = {pid: peak_rss_mb(pid) for pid in server_processes(server)}
    wide, bomb = wide_png(), png_with_text_bomb()

    async def run():
        async with httpx.AsyncClient(base_url=server["url"], timeout=BOUND_SECONDS) as client:
            posts = [client.post("/predict", content=data, headers={"content-type": "image/png"})
                     for data in [wide] * 8 + [bomb] * 8]  # fmt: skip
            return await asyncio.gather(*posts)

    began = time.monotonic()
    answers = asyncio.run(run())
    took = time.monotonic() - began
    for response in answers[:8]:
        assert_refusal(response, 413)
        assert "16777216 x 1 pixels, a side above" in response.json()["detail"]
    for response in answers[8:]:
        assert_refusal(response, 413)
        assert "text chunk decompresses" in response.json()["detail"]
    grown = {
        pid: peak_rss_mb(pid) - mb for pid, mb in before.items() if Path(f"/proc/{pid}").exists()
    }
    assert max(grown.values()) < 64, f"peak memory grew by {grown} MiB"
    print(f"16 costly images refused in {took:.2f} s; peak memory growth (MiB): {grown}")


@pytest.mark.slow
def test_page_in_headless_chromium(server, digits_root, tmp_path):
    """Each state of the page, with a screenshot of it in tmp_path: what the model knows and the
    pad's hint; "nothing drawn" on an empty pad; working; an upload's answer with its small
    image scaled up; a failed upload (the answer cleared, an error in a user's words); a
    drawn 1."""
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        pytest.skip("no /usr/bin/chromium + /usr/bin/chromedriver (apt-get install chromium "
                    "chromium-driver; .ci/run does)")  # fmt: skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1000,1000"):  # fmt: skip
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(browser, BOUND_SECONDS)
    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
    shot = lambda name: browser.save_screenshot(str(tmp_path / f"{name}.png"))  # noqa: E731
    try:
        browser.get(server["url"] + "/")
        results = browser.find_element(By.ID, "results")
        wait.until(lambda _: "trained on" in text("model"))
        assert "16 x 16 pixel images of 10 classes: 0, 1, 2" in text("model")
        assert "white on black" in text("model")
        assert "Draw here" in text("hint")
        shot("1-start")

        browser.find_element(By.ID, "classify").click()  # the pad is empty
        assert "Nothing drawn" in results.text and results.get_attribute("data-top") == ""
        shot("2-nothing-drawn")

        # Working: hold the answer until the screenshot is taken.
        browser.execute_script("""
            window.realFetch = window.fetch;
            window.fetch = (...args) => new Promise((resolve) => {
              window.release = () => resolve(window.realFetch(...args)); });""")
        label, path = digit_files(digits_root, per_class=1)[7]
        browser.find_element(By.ID, "file").send_keys(str(path))
        wait.until(lambda _: results.get_attribute("data-state") == "waiting")
        assert "Working" in results.text
        shot("3-working")
        browser.execute_script("window.fetch = window.realFetch; window.release();")
        wait.until(lambda _: results.get_attribute("data-state") == "done")
        assert text("error") == "" and results.get_attribute("data-top") == label
        rows = results.find_elements(By.CLASS_NAME, "row")
        assert len(rows) == 3 and rows[0].find_element(By.CLASS_NAME, "label").text == label
        preview = browser.find_element(By.ID, "preview")
        wait.until(lambda _: preview.size["width"] >= 112)  # 16 px, shown scaled up
        shot("4-upload")

        not_an_image = tmp_path / "notes.png"
        not_an_image.write_bytes(b"these are notes, not a picture")
        browser.find_element(By.ID, "file").send_keys(str(not_an_image))
        wait.until(lambda _: text("error") != "")
        assert results.find_elements(By.CLASS_NAME, "row") == []  # the previous answer is gone
        assert text("error") == "That is not an image file that can be read."
        assert "--" not in text("error") and "base64" not in text("error")
        assert "not an image" in browser.find_element(By.ID, "error").get_attribute("title")
        shot("5-error")

        # A vertical stroke down the middle of the pad: a "1".
        browser.execute_script("document.getElementById('results').dataset.state = 'drawing'")
        canvas = browser.find_element(By.ID, "canvas")
        ActionChains(browser).move_to_element_with_offset(
            canvas, 0, -90
        ).click_and_hold().move_by_offset(0, 60).move_by_offset(0, 60).move_by_offset(
            0, 60
        ).release().perform()
        wait.until(lambda _: results.get_attribute("data-state") == "done")
        assert text("error") == "" and not browser.find_element(By.ID, "hint").is_displayed()
        drawn = results.get_attribute("data-top")
        shot("6-drawing")
        assert drawn == "1", f"the stroke was read as {drawn} (see {tmp_path / '6-drawing.png'})"
    finally:
        browser.quit()


def assert_group_ends(group: int) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(group) == [], "left behind: " + ", ".join(group_members(group))


@pytest.mark.slow
def test_sigterm_with_a_stalled_upload_stops_within_the_deadline(server):
    """SIGTERM while an upload is stalled: the server and every worker stop at
    --shutdown_timeout (1.5 s here), before the upload's own --body_timeout (6 s) would have
    answered it, exit 0, no traceback."""
    process = server["process"]
    group = process.pid  # the server leads its own session: its group id is its pid
    assert len(group_members(group)) >= 3, group_members(group)  # worker, API server, manager
    stalled = hold(server["port"], STALLED_UPLOAD)
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=BOUND_SECONDS) == 0, tail(server["log"].read_text())
    stopped_in = time.monotonic() - began
    assert b"408" not in until_closed(stalled), f"waited for the stalled upload ({stopped_in} s)"
    assert "Traceback" not in server["log"].read_text(), tail(server["log"].read_text())
    assert_group_ends(group)
    print(f"stopped in {stopped_in:.2f} s")


@pytest.mark.slow
def test_a_second_signal_stops_at_once(fitted, tmp_path):
    """With --shutdown_timeout 60 and an upload stalled, SIGTERM starts the wait and a second
    one (SIGINT, as Ctrl-C sends it) ends it: exit 0, quietly, every worker gone."""
    log = tmp_path / "server.log"
    process, url = start_server(fitted["best"], log, "--shutdown_timeout", "60",
                                "--body_timeout", "60")  # fmt: skip
    try:
        stalled = hold(int(url.rsplit(":", 1)[1]), STALLED_UPLOAD)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=BOUND_SECONDS) == 0, tail(log.read_text())
        stopped_in = time.monotonic() - began
        assert stopped_in < 60, f"waited for the deadline: {stopped_in:.1f} s"
        assert "Traceback" not in log.read_text() and "Error" not in log.read_text(), tail(
            log.read_text())  # fmt: skip
        assert_group_ends(process.pid)
        stalled.close()
    finally:
        if process.poll() is None:
            kill_group(process)


@pytest.mark.slow
def test_a_sigterm_the_kernel_hands_to_another_thread_still_stops_the_server(fitted, tmp_path):
    """The kernel may deliver a process's signal to any of its threads, and Python runs the
    handler in the main thread only, which LitServe keeps in a blocking read: the server waited
    for ever (seen once in CI, after SIGTERM and SIGINT back to back). tgkill hands SIGTERM to
    the server's newest thread (LitServe's worker monitor); project/serve/stopping.py's relay
    wakes the main thread: exit 0, every process gone."""
    log = tmp_path / "server.log"
    process, _ = start_server(fitted["best"], log)
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{process.pid}/task")]
        newest = max(t for t in threads if t != process.pid)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(process.pid, newest, signal.SIGTERM) == 0, ctypes.get_errno()
        assert process.wait(timeout=BOUND_SECONDS) == 0, tail(log.read_text())
        assert "Traceback" not in log.read_text(), tail(log.read_text())
        assert_group_ends(process.pid)
    finally:
        if process.poll() is None:
            kill_group(process)


def group_members(group: int) -> list[str]:
    """'pid command' of every live (non-zombie) process in the process group ``group``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            members.append(f"{entry.name} {command}")
    return members


@pytest.mark.slow
def test_onnx_file_answers_as_the_checkpoint(fitted, digits_root, tmp_path):
    """--onnx reads class names and preprocessing from the file's metadata: the same answer."""
    from project.deploy.export import export_onnx, network_from_checkpoint
    from project.serve.api import ClassifierAPI

    network, settings = network_from_checkpoint(fitted["best"])
    onnx_file = export_onnx(network, settings, tmp_path / "model.onnx")
    apis = [ClassifierAPI(ckpt_path=str(fitted["best"])), ClassifierAPI(onnx_path=str(onnx_file))]
    images = [path.read_bytes() for _, path in digit_files(digits_root, per_class=1)]
    answers = []
    for api in apis:
        api.setup("cpu")
        batch = api.batch([api.decode_request({"image": base64.b64encode(d).decode()})
                           for d in images])  # fmt: skip
        answers.append([api.encode_response(p) for p in api.unbatch(api.predict(batch))])
    for from_checkpoint, from_onnx in zip(*answers, strict=True):
        assert [i["class"] for i in from_checkpoint["top_k"]] == [
            i["class"] for i in from_onnx["top_k"]]  # fmt: skip
        for a, b in zip(from_checkpoint["top_k"], from_onnx["top_k"], strict=True):
            assert abs(a["probability"] - b["probability"]) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_worker_answers_as_the_cpu_one(fitted, digits_root):
    """--accelerator auto picks the GPU; the worker's network and batches are on it, in float32
    (this checkpoint was trained in float32) and, asked with --precision 16, in float16; the
    answers agree with the CPU worker's."""
    from project.serve.api import ClassifierAPI
    from project.serve.cli import resolve_accelerator

    assert resolve_accelerator("auto") == "cuda"
    images = [path.read_bytes() for _, path in digit_files(digits_root, per_class=2)]
    answers = {}
    for device, precision in (("cpu", "auto"), ("cuda:0", "auto"), ("cuda:0", "16")):
        api = ClassifierAPI(ckpt_path=str(fitted["best"]), precision=precision)
        api.setup(device)
        weight = next(api.network.parameters())
        assert weight.device.type == device[:4]
        assert weight.dtype == (torch.float16 if precision == "16" else torch.float32)
        batch = api.batch([api.decode_request({"image": base64.b64encode(d).decode()})
                           for d in images])  # fmt: skip
        answers[device, precision] = torch.stack(api.unbatch(api.predict(batch)))
    cpu = answers["cpu", "auto"]
    assert torch.allclose(answers["cuda:0", "auto"], cpu, atol=1e-4)
    assert torch.allclose(answers["cuda:0", "16"], cpu, atol=1e-2)
    assert (answers["cuda:0", "16"].argmax(1) == cpu.argmax(1)).float().mean() >= 0.95


@pytest.mark.slow
def test_lesson_7s_commands_run_as_written(fitted, digits_root, tmp_path):
    """Lesson 7's last cell: ``quantize`` writes model-int8.onnx, and ``serve --onnx
    model-int8.onnx`` answers a request with it (the file carries what serve needs)."""
    lesson = (REPO / "lessons" / "07_optimize.py").read_text()
    assert "`--onnx model-int8.onnx`, the file\n#   `quantize` writes" in lesson
    quantized = subprocess.run(
        [sys.executable, "-m", "project", "quantize", "--ckpt_path", str(fitted["best"]),
         "--calibration", "64"],
        cwd=tmp_path, capture_output=True, text=True, timeout=BOUND_SECONDS,
    )  # fmt: skip
    assert quantized.returncode == 0, quantized.stdout[-2000:] + quantized.stderr[-2000:]
    int8 = tmp_path / "model-int8.onnx"  # quantize's default output, in the working folder
    assert int8.exists()
    process, url = start_server(int8, tmp_path / "server.log", model_flag="--onnx")
    try:
        _, path = digit_files(digits_root, per_class=1)[0]
        upload = {"file": ("digit.png", path.read_bytes(), "image/png")}
        answer = httpx.post(f"{url}/predict", files=upload, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["top_k"][0]["class"] in [str(c) for c in range(10)]
    finally:
        kill_group(process)
