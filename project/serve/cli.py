"""``python -m project serve``: a trained classifier behind HTTP (LitServe), with a page to try it.

    python -m project serve --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt
    python -m project serve --onnx model.onnx --port 8000 --max_batch_size 16 --batch_timeout 0.01
    curl -F image=@digit.png http://127.0.0.1:8000/predict      # {"top_k": [{"class": ...}, ...]}
    curl --data-binary @digit.png -H 'Content-Type: image/png' http://127.0.0.1:8000/predict
    open http://127.0.0.1:8000/                                  # the page: upload, drop or draw

Binds 127.0.0.1 unless --host says otherwise. The model runs on a CUDA GPU when there is one
(--accelerator auto), else on the CPU. SIGTERM or Ctrl-C stops the server and its workers within
--shutdown_timeout seconds, whatever clients hold open, and exits 0; a second one stops it at once.
A bad checkpoint or option: one line on stderr, exit status 2, before any port opens.
"""

from __future__ import annotations

import argparse
import os
import sys

from project.serve.limits import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
    DEFAULT_MAX_UPLOAD_MB,
    MEGABYTE,
    Limits,
)
from project.serve.stopping import stop_now, stop_on_signals


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m project serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", help="a checkpoint of either loop (read weights_only)")
    source.add_argument("--onnx", help="an ONNX file from python -m project export")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every network)")
    p.add_argument("--port", type=int, default=8000)
    model = p.add_argument_group("the model")
    model.add_argument("--accelerator", choices=("auto", "cpu", "cuda"), default="auto",
                       help="auto: a CUDA GPU when there is one, else the CPU")  # fmt: skip
    model.add_argument("--precision", choices=("auto", "32", "16", "bf16"), default="auto",
                       help="auto: on a GPU, the half precision the checkpoint was trained in "
                       "(else float32); float32 on the CPU")  # fmt: skip
    model.add_argument("--max_batch_size", type=int, default=16, help="1 turns batching off")
    model.add_argument("--batch_timeout", type=float, default=0.01,
                       help="seconds a batch waits to fill before it runs")  # fmt: skip
    model.add_argument("--workers", type=int, default=1,
                       help="model worker processes per device")  # fmt: skip
    model.add_argument("--threads", type=int, default=0,
                       help="torch threads per CPU worker (0: the cores, less one for the HTTP "
                       "server, shared among the workers)")  # fmt: skip
    model.add_argument("--fast_queue", action=argparse.BooleanOptionalAction, default=False,
                       help="LitServe's ZeroMQ transport for answers instead of its "
                       "multiprocessing queues (benchmarks/serving.py compares both)")  # fmt: skip
    model.add_argument("--top_k", type=int, default=5, help="classes in each answer")
    limits = p.add_argument_group("what a client may send or hold")
    limits.add_argument("--max_upload_mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help="largest image file accepted (413 above)")  # fmt: skip
    limits.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest width x height, from the header (413 above)")  # fmt: skip
    limits.add_argument("--max_side", type=int, default=DEFAULT_MAX_SIDE,
                        help="largest width or height, from the header (413 above)")  # fmt: skip
    limits.add_argument("--max_pending", type=int, default=64,
                        help="requests being decoded or predicted per API server process "
                        "before 503")  # fmt: skip
    limits.add_argument("--max_connections", type=int, default=128,
                        help="open connections per API server process before uvicorn answers "
                        "503 (its limit_concurrency)")  # fmt: skip
    limits.add_argument("--header_timeout", type=float, default=10.0,
                        help="seconds for a request's headers to arrive before the connection "
                        "is closed")  # fmt: skip
    limits.add_argument("--body_timeout", type=float, default=10.0,
                        help="seconds for a request's body to arrive before 408 and the "
                        "connection closed")  # fmt: skip
    limits.add_argument("--shutdown_timeout", type=float, default=5.0,
                        help="seconds SIGTERM waits for open requests, then stops")  # fmt: skip
    return p


def check_options(options) -> str | None:
    """The one-line problem with the options, or None."""
    path = options.ckpt_path or options.onnx
    flag = "--ckpt_path" if options.ckpt_path else "--onnx"
    if not os.path.isfile(path):
        return f"{flag} {path}: no such file"
    for name in ("max_batch_size", "workers", "max_pending", "top_k", "max_pixels", "max_side",
                 "max_connections"):  # fmt: skip
        if getattr(options, name) < 1:
            return f"--{name} must be at least 1"
    if options.threads < 0:
        return "--threads must be at least 0"
    for name in ("max_upload_mb", "header_timeout", "body_timeout", "shutdown_timeout"):
        if getattr(options, name) <= 0:
            return f"--{name} must be above 0"
    if options.batch_timeout < 0:
        return "--batch_timeout must be at least 0"
    if not 0 <= options.port <= 65535:
        return f"--port {options.port}: not a port number"
    if options.accelerator == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "--accelerator cuda: no CUDA GPU is available here (torch.cuda.is_available())"
    return None


def resolve_accelerator(accelerator: str) -> str:
    """``auto``: "cuda" when torch sees a CUDA GPU, else "cpu"."""
    if accelerator != "auto":
        return accelerator
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def worker_threads(options, accelerator: str) -> int | None:
    """torch threads per model worker: on the CPU, the cores this process may use less one for
    the API server, shared among the workers (at least 1). More threads than free cores make
    PyTorch's thread pool wait for cores instead of computing: on 2 cores under load, 2 threads
    ran the digits CNN 9x slower than 1 (benchmarks/serving.py --profile)."""
    if options.threads:
        return options.threads
    if accelerator != "cpu":
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, ((cores or 1) - 1) // options.workers)


def load_check(options) -> tuple[str | None, dict | None]:
    """Load the model once here, so a bad file is one line and exit 2, not a worker's traceback.
    Returns (problem, inference settings)."""
    from project.serve.api import load_model

    try:
        _, settings = load_model(options.ckpt_path, options.onnx)
    except Exception as error:  # CheckpointError, onnxruntime's errors, missing metadata
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        path = options.ckpt_path or options.onnx
        return (first if first.startswith(path) else f"{path}: {first}"), None
    return None, settings


DIGITS = [str(digit) for digit in range(10)]


def page_metadata(settings: dict) -> dict:
    """What GET /info tells the page (LitServe's ``model_metadata``): the classes, the image size,
    and whether these are the digits (white on black, as the bundled digits are drawn)."""
    names = [str(name) for name in settings["class_names"]]
    return {"class_names": names, "image_size": int(settings["image_size"]),
            "digits": names == DIGITS}  # fmt: skip


def build_server(options, settings: dict, accelerator: str):
    import litserve as ls

    from project.data.transforms import inference_transform
    from project.serve.api import ClassifierAPI
    from project.serve.guard import ImageGuard

    limits = Limits(int(options.max_upload_mb * MEGABYTE), options.max_pixels, options.max_side)
    api = ClassifierAPI(
        ckpt_path=options.ckpt_path, onnx_path=options.onnx, top_k=options.top_k,
        max_pixels=options.max_pixels, threads=worker_threads(options, accelerator),
        precision=options.precision, max_batch_size=options.max_batch_size,
        batch_timeout=options.batch_timeout,
    )  # fmt: skip
    guard = (ImageGuard, {"limits": limits, "transform": inference_transform(settings),
                          "max_pending": options.max_pending,
                          "body_timeout": options.body_timeout})  # fmt: skip
    server = ls.LitServer(
        api, accelerator=accelerator, workers_per_device=options.workers, middlewares=[guard],
        disable_openapi_url=True, fast_queue=options.fast_queue,
        model_metadata=page_metadata(settings),
    )  # fmt: skip
    # LitServe's own setting (30 s): how long each API server waits for open requests on SIGTERM.
    server.uvicorn_graceful_timeout = max(0.5, options.shutdown_timeout - 1)
    return server


def uvicorn_options(options) -> dict:
    """uvicorn's own limits (LitServer.run passes them on to uvicorn.Config)."""
    from project.serve.guard import header_deadline_protocol

    return {
        "limit_concurrency": options.max_connections,
        "timeout_keep_alive": 5,  # idle kept-alive connections (uvicorn's default)
        "http": header_deadline_protocol(options.header_timeout),
    }


def main(args: list[str] | None = None) -> int:
    options = parser().parse_args(args)
    problem = check_options(options)
    settings = None
    if problem is None:
        problem, settings = load_check(options)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    accelerator = resolve_accelerator(options.accelerator)
    server = build_server(options, settings, accelerator)
    stop_on_signals(options.shutdown_timeout)
    print(f"serving on http://{options.host}:{options.port}/ (POST /predict, GET /health), "
          f"model on {accelerator}", flush=True)  # fmt: skip
    try:
        server.run(host=options.host, port=options.port, generate_client_file=False,
                   log_level="warning", **uvicorn_options(options))  # fmt: skip
    except KeyboardInterrupt:  # a signal before LitServe's own handling began (start-up)
        stop_now()
    return 0
