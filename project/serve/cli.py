"""``python -m project serve``: a trained classifier behind HTTP (LitServe), with a page to try it.

    python -m project serve --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt
    python -m project serve --onnx model.onnx --port 8000 --max_batch_size 16 --batch_timeout 0.01
    curl -F image=@digit.png http://127.0.0.1:8000/predict      # {"top_k": [{"class": ...}, ...]}
    curl --data-binary @digit.png -H 'Content-Type: image/png' http://127.0.0.1:8000/predict
    open http://127.0.0.1:8000/                                  # the page: upload, drop or draw

Binds 127.0.0.1 unless --host says otherwise. SIGTERM or Ctrl-C stops the server and its workers
and exits 0. A bad checkpoint or option: one line on stderr, exit status 2, before any port opens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from project.serve.limits import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, MEGABYTE, Limits


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m project serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", help="a checkpoint of either loop (read weights_only)")
    source.add_argument("--onnx", help="an ONNX file from python -m project export")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max_batch_size", type=int, default=16, help="1 turns batching off")
    p.add_argument("--batch_timeout", type=float, default=0.01,
                   help="seconds a batch waits to fill before it runs")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="model worker processes")
    p.add_argument("--max_upload_mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help="largest image file accepted (413 above)")  # fmt: skip
    p.add_argument(
        "--max_pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="largest width x height accepted, read from the header (413 above)",
    )
    p.add_argument("--max_pending", type=int, default=64,
                   help="requests in flight per API server process before 503")  # fmt: skip
    p.add_argument("--top_k", type=int, default=5, help="classes in each answer")
    return p


def check_options(options) -> str | None:
    """The one-line problem with the options, or None."""
    path = options.ckpt_path or options.onnx
    flag = "--ckpt_path" if options.ckpt_path else "--onnx"
    if not os.path.isfile(path):
        return f"{flag} {path}: no such file"
    for name in ("max_batch_size", "workers", "max_pending", "top_k", "max_pixels"):
        if getattr(options, name) < 1:
            return f"--{name} must be at least 1"
    if options.max_upload_mb <= 0 or options.batch_timeout < 0:
        return "--max_upload_mb must be above 0 and --batch_timeout at least 0"
    if not 0 <= options.port <= 65535:
        return f"--port {options.port}: not a port number"
    return None


def load_check(options) -> str | None:
    """Load the model once here, so a bad file is one line and exit 2, not a worker's traceback."""
    from project.serve.api import load_model

    try:
        load_model(options.ckpt_path, options.onnx)
    except Exception as error:  # CheckpointError, onnxruntime's errors, missing metadata
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        path = options.ckpt_path or options.onnx
        return first if first.startswith(path) else f"{path}: {first}"
    return None


def build_server(options):
    import litserve as ls

    from project.serve.api import ClassifierAPI
    from project.serve.guard import ImageGuard

    limits = Limits(int(options.max_upload_mb * MEGABYTE), options.max_pixels)
    api = ClassifierAPI(
        ckpt_path=options.ckpt_path, onnx_path=options.onnx, top_k=options.top_k,
        max_pixels=options.max_pixels, max_batch_size=options.max_batch_size,
        batch_timeout=options.batch_timeout,
    )  # fmt: skip
    guard = (ImageGuard, {"limits": limits, "max_pending": options.max_pending})
    return ls.LitServer(
        api, accelerator="cpu", workers_per_device=options.workers, middlewares=[guard],
        disable_openapi_url=True,
    )  # fmt: skip


def stop_on_sigterm() -> None:
    # LitServer shuts its workers down on KeyboardInterrupt; SIGTERM's default would kill only
    # this process and leave the workers behind.
    server_pid = os.getpid()

    def interrupt(signum, frame):
        if os.getpid() == server_pid:
            raise KeyboardInterrupt
        # A forked API server inherits this handler; it ends as SIGTERM's default would.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, interrupt)


def main(args: list[str] | None = None) -> int:
    options = parser().parse_args(args)
    problem = check_options(options) or load_check(options)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    server = build_server(options)
    stop_on_sigterm()
    print(f"serving on http://{options.host}:{options.port}/ (POST /predict, GET /health)",
          flush=True)  # fmt: skip
    server.run(host=options.host, port=options.port, generate_client_file=False,
               log_level="warning")  # fmt: skip
    return 0
