"""Load test of ``python -m project serve``: requests/s and latency, batching on and off, against a
plain FastAPI endpoint over the same model, beside the bare model's images/s.

    python -m benchmarks.serving            # about 5 minutes on a 2-core machine (6 server starts)
    python -m benchmarks.serving --quick    # fewer requests

For the digits CNN (16 px) and ResNet18 at 64 px (random weights: speed does not depend on them),
each server runs as a real process on 127.0.0.1: ``serve`` with ``--max_batch_size 16``
(batching on), ``serve --max_batch_size 1`` (off), and benchmarks/serving_plain.py (FastAPI, one
forward pass per request). A bounded async httpx client sends a fixed number of PNG uploads at
concurrency 1, 8 and 32 (and stops early at a time bound). "bare" is the network alone on a batch
of 16 preprocessed images, in this process. The client shares the CPU with the server: its CPU
seconds over the wall time are printed as "client CPU".
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from benchmarks.common import machine

CONCURRENCY = (1, 8, 32)
BATCH = 16
TIME_BOUND = 60.0  # seconds per concurrency level at most
MODELS = {  # name: (class path, init arguments, image size)
    "digits CNN": ("project.lit.classifier.CNNClassifier", {"widths": [32, 64, 128]}, 16),
    "ResNet18 64px": ("project.lit.classifier.ResNetClassifier",
                      {"backbone": "resnet18", "weights": None}, 64),
}  # fmt: skip


def write_checkpoint(folder: Path, class_path: str, arguments: dict, size: int) -> Path:
    """A checkpoint ``serve`` reads (network_from_checkpoint), with random weights."""
    import importlib

    module_name, class_name = class_path.rsplit(".", 1)
    model = getattr(importlib.import_module(module_name), class_name)(num_classes=10, **arguments)
    checkpoint = {
        "hyper_parameters": {**arguments, "num_classes": 10, "_class_path": class_path},
        "state_dict": model.state_dict(),
        "inference": {"class_names": [str(i) for i in range(10)], "image_size": size,
                      "mean": [0.5] * 3, "std": [0.25] * 3},
    }  # fmt: skip
    path = folder / f"{class_name}.ckpt"
    torch.save(checkpoint, path)
    return path


def bare_rate(path: Path, seconds: float = 5.0) -> float:
    """Images/s of the network alone on batches of BATCH (no decoding, no HTTP)."""
    from project.deploy.export import network_from_checkpoint

    network, settings = network_from_checkpoint(path)
    batch = torch.randn(BATCH, 3, settings["image_size"], settings["image_size"])
    with torch.inference_mode():
        network(batch)  # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            network(batch).softmax(dim=1)
            count += BATCH
    return count / (time.perf_counter() - start)


def png(size: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], url: str, log: Path) -> subprocess.Popen:
    output = open(log, "w")  # noqa: SIM115 - the server writes to it while it runs
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {command}\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def load(url: str, image: bytes, concurrency: int, requests: int) -> dict:
    """``requests`` uploads, ``concurrency`` at a time, stopped at TIME_BOUND."""
    latencies, errors = [], 0
    queue = iter(range(requests))
    deadline = time.perf_counter() + TIME_BOUND
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker():
            nonlocal errors
            for _ in queue:
                if time.perf_counter() > deadline:
                    return
                began = time.perf_counter()
                try:
                    response = await client.post("/predict", content=image,
                                                 headers={"content-type": "image/png"})  # fmt: skip
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - began)
                errors += not ok

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ms = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"requests": len(latencies), "rate": len(latencies) / wall, "p50": ms[0],
            "p95": ms[1], "p99": ms[2], "errors": errors, "client_cpu": cpu / wall}  # fmt: skip


def servers(checkpoint: Path, port: int) -> dict[str, list[str]]:
    serve = [sys.executable, "-m", "project", "serve", "--ckpt_path", str(checkpoint),
             "--port", str(port), "--max_pending", "1000"]  # fmt: skip
    plain = [sys.executable, "-m", "benchmarks.serving_plain", str(checkpoint), str(port)]
    return {
        f"LitServe, batch {BATCH}": [*serve, "--max_batch_size", str(BATCH)],
        "LitServe, no batching": [*serve, "--max_batch_size", "1"],
        "plain FastAPI": plain,
    }


def main(argv: list[str] | None = None) -> dict:
    options = argparse.ArgumentParser(description=__doc__).parse_known_args(argv)[1]
    requests = {1: 40, 8: 160, 32: 320} if "--quick" not in options else {1: 20, 8: 60, 32: 120}
    folder = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    header = (f"{'model':<14} {'server':<20} {'conc':>4} {'req':>4} {'req/s':>7} {'p50 ms':>7} "
              f"{'p95 ms':>7} {'p99 ms':>7} {'err':>4} {'client CPU':>10}")  # fmt: skip
    print(f"machine: {machine()} (shared with other work)")
    print(header)
    results = {}
    for name, (class_path, arguments, size) in MODELS.items():
        checkpoint = write_checkpoint(folder, class_path, arguments, size)
        bare = bare_rate(checkpoint)
        results[name] = {"bare_images_per_s": bare}
        print(f"{name:<14} {'bare model, batch 16':<20} {'':>4} {'':>4} {bare:7.0f} (images/s)")
        image = png(size)
        for server, command in servers(checkpoint, port := free_port()).items():
            url = f"http://127.0.0.1:{port}"
            process = start(command, url, folder / "server.log")
            try:
                asyncio.run(load(url, image, 4, 16))  # warm-up
                for concurrency in CONCURRENCY:
                    row = asyncio.run(load(url, image, concurrency, requests[concurrency]))
                    results[name][f"{server} c{concurrency}"] = row
                    print(f"{name:<14} {server:<20} {concurrency:>4} {row['requests']:>4} "
                          f"{row['rate']:7.1f} {row['p50']:7.1f} {row['p95']:7.1f} "
                          f"{row['p99']:7.1f} {row['errors']:>4} {row['client_cpu']:>9.0%}",
                          flush=True)  # fmt: skip
            finally:
                stop(process)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
