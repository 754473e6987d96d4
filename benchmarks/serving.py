"""Load test of ``python -m project serve``: requests/s, latency and where the CPU goes, batching
on and off, against a plain FastAPI endpoint over the same model, beside the bare model.

    python -m benchmarks.serving                 # 3 interleaved rounds; about 15 min on 2 cores
    python -m benchmarks.serving --quick         # 1 round, fewer requests: a smoke run
    python -m benchmarks.doc_tables record serving -- python -m benchmarks.serving
                                                 # the same, written to benchmarks/results/
                                                 # serving.json (docs/deploy.md's table)

Models: the digits CNN (16 px) and ResNet18 at 64 px, random weights (speed does not depend on
them). Servers, each a real process on 127.0.0.1, all started before the first request:

  LitServe b16          serve --max_batch_size 16 (the defaults: 1 torch thread per worker on
                        2 cores, multiprocessing queues)
  LitServe b16 zmq      the same with --fast_queue (LitServe's ZeroMQ transport for answers)
  LitServe b16 2 thr    the same with --threads 2: the worker as it ran before (torch's default)
  LitServe no batch     serve --max_batch_size 1
  plain FastAPI         benchmarks/serving_plain.py: one forward pass per request, no worker

Rounds are interleaved: in each round, each concurrency level (1, 8, 32) is run on every server
in turn (a rotating order), while the other servers are paused (SIGSTOP), so an idle server's
polling takes no CPU from the one measured. A bounded async httpx client sends PNG uploads:
--requests per level (or fewer, when --duration runs out first). "bare" is the network alone on
batches of 16 preprocessed images, in this process, with the worker's thread count, timed in
every round. Printed per level: the median req/s over rounds, p50 and p99 over all requests of
all rounds, errors, and CPU milliseconds per request of the client, of the whole server (every
process in its group) and of its model worker alone: the profile of where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import socket
import statistics
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
MODELS = {  # name: (class path, init arguments, image size)
    "digits CNN": ("project.lit.classifier.CNNClassifier", {"widths": [32, 64, 128]}, 16),
    "ResNet18 64px": ("project.lit.classifier.ResNetClassifier",
                      {"backbone": "resnet18", "weights": None}, 64),
}  # fmt: skip
SERVE_OPTIONS = {  # server name: serve options (None: the plain FastAPI endpoint)
    "LitServe b16": ["--max_batch_size", str(BATCH)],
    "LitServe b16 zmq": ["--max_batch_size", str(BATCH), "--fast_queue"],
    "LitServe b16 2 thr": ["--max_batch_size", str(BATCH), "--threads", "2"],
    "LitServe no batch": ["--max_batch_size", "1"],
    "plain FastAPI": None,
}
BATCHED, PLAIN = "LitServe b16", "plain FastAPI"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 round of 20/60/120 requests: a smoke run, not figures to quote",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per level and round (default 40/160/320 at 1/8/32)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=20.0,
        help="seconds per level and round at most (default 20)",
    )
    p.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}"
    )
    p.add_argument("--servers", default=",".join(SERVE_OPTIONS),
                   help=f"comma-separated, of: {', '.join(SERVE_OPTIONS)}")  # fmt: skip
    return p


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


def bare_rate(network, size: int, threads: int, seconds: float) -> float:
    """Images/s of the network alone on batches of BATCH (no decoding, no HTTP)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    batch = torch.randn(BATCH, 3, size, size)
    try:
        with torch.inference_mode():
            network(batch)  # warm-up
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                network(batch).softmax(dim=1)
                count += BATCH
        return count / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)


def png(size: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------- server processes


class Server:
    """One server process group on a free port: started, paused, resumed, its CPU read, stopped."""

    def __init__(self, name: str, command: list[str], log: Path):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")  # noqa: SIM115 - the server writes to it while it runs
        command = [*command, "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip

    def wait_ready(self, bound: float = 300) -> None:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{Path(self.log.name).read_text()[-2000:]}")

    def members(self) -> dict[int, str]:
        """pid: command line of every process in this server's group."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:
                    found[int(entry.name)] = (
                        (entry / "cmdline").read_bytes().decode(errors="replace")
                    )
        return found

    def cpu_seconds(self) -> tuple[float, float]:
        """(CPU seconds of the whole group, of its model worker processes) so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = worker = 0.0
        for pid, command in self.members().items():
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
                total += seconds
                worker += seconds if "spawn_main" in command else 0.0
        return total, worker

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, number)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
        self.signal(signal.SIGKILL)  # any worker left behind
        self.log.close()


def commands(checkpoint: Path) -> dict[str, list[str]]:
    serve = [sys.executable, "-m", "project", "serve", "--ckpt_path", str(checkpoint),
             "--max_pending", "1000"]  # fmt: skip
    plain = [sys.executable, "-m", "benchmarks.serving_plain", str(checkpoint)]
    return {name: plain if options is None else [*serve, *options]
            for name, options in SERVE_OPTIONS.items()}  # fmt: skip


# ---------------------------------------------------------------------------- the load


async def load(url: str, image: bytes, concurrency: int, requests: int, seconds: float) -> dict:
    """``requests`` uploads, ``concurrency`` at a time, stopped after ``seconds``."""
    latencies, errors = [], 0
    queue = iter(range(requests))
    deadline = time.perf_counter() + seconds
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
    return {"latencies": latencies, "rate": len(latencies) / wall, "errors": errors,
            "client_cpu": cpu}  # fmt: skip


def measure(server: Server, image: bytes, concurrency: int, requests: int, seconds: float):
    server.signal(signal.SIGCONT)
    try:
        asyncio.run(load(server.url, image, 4, 8, seconds))  # warm-up after the pause
        before = server.cpu_seconds()
        row = asyncio.run(load(server.url, image, concurrency, requests, seconds))
        after = server.cpu_seconds()
    finally:
        server.signal(signal.SIGSTOP)
    row["server_cpu"], row["worker_cpu"] = (b - a for a, b in zip(before, after, strict=True))
    return row


def summary(rows: list[dict]) -> dict:
    latencies = np.array([value for row in rows for value in row["latencies"]]) * 1000
    count = len(latencies)
    per_request = lambda key: 1000 * sum(row[key] for row in rows) / max(count, 1)  # noqa: E731
    return {
        "requests": count, "rate": statistics.median(row["rate"] for row in rows),
        "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99)),
        "errors": sum(row["errors"] for row in rows), "client_ms": per_request("client_cpu"),
        "server_ms": per_request("server_cpu"), "worker_ms": per_request("worker_cpu"),
    }  # fmt: skip


def run_model(name: str, folder: Path, options, requests: dict, servers: list[str]) -> dict:
    from project.deploy.export import network_from_checkpoint
    from project.serve.cli import worker_threads

    class_path, arguments, size = MODELS[name]
    checkpoint = write_checkpoint(folder, class_path, arguments, size)
    network, _ = network_from_checkpoint(checkpoint)
    threads = worker_threads(argparse.Namespace(threads=0, workers=1), "cpu")
    image = png(size)
    started = {}
    try:
        for server_name in servers:
            command = commands(checkpoint)[server_name]
            started[server_name] = Server(server_name, command, folder / f"{server_name}.log")
        for server in started.values():
            server.wait_ready()
            server.signal(signal.SIGSTOP)
        rows = {(s, c): [] for s in started for c in CONCURRENCY}
        bare = []
        for round_index in range(options.rounds):
            bare.append(bare_rate(network, size, threads, seconds=3.0))
            order = (
                list(started)[round_index % len(started) :]
                + list(started)[: round_index % len(started)]
            )
            for concurrency in CONCURRENCY:
                for server_name in order:
                    rows[server_name, concurrency].append(
                        measure(
                            started[server_name],
                            image,
                            concurrency,
                            requests[concurrency],
                            options.duration,
                        )  # fmt: skip
                    )
    finally:
        for server in started.values():
            server.stop()
    return {"bare": statistics.median(bare), "threads": threads,
            "rows": {key: summary(value) for key, value in rows.items()}}  # fmt: skip


def print_model(name: str, result: dict) -> None:
    print(f"\n### {name}: bare model {result['bare']:.0f} images/s (batch {BATCH}, "
          f"{result['threads']} torch thread(s), median of rounds)")  # fmt: skip
    print(f"{'server':<19} {'conc':>4} {'req':>5} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'err':>4}  {'CPU ms/request: client':>22} {'server':>7} {'worker':>7}")  # fmt: skip
    for (server, concurrency), row in result["rows"].items():
        print(f"{server:<19} {concurrency:>4} {row['requests']:>5} {row['rate']:>7.1f} "
              f"{row['p50']:>8.1f} {row['p99']:>8.1f} {row['errors']:>4}  "
              f"{row['client_ms']:>22.2f} {row['server_ms']:>7.2f} "
              f"{row['worker_ms']:>7.2f}")  # fmt: skip
    top = max(CONCURRENCY)
    batched, plain = result["rows"].get((BATCHED, top)), result["rows"].get((PLAIN, top))
    if batched and plain:
        print(f"at concurrency {top}: {BATCHED} / {PLAIN} = {batched['rate'] / plain['rate']:.2f}x "
              f"(goal 1.5x); {BATCHED} / bare = {batched['rate'] / result['bare']:.2f}x "
              f"(goal 0.5x)")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    options = parser().parse_args([] if argv is None else argv)
    models = [m.strip() for m in options.models.split(",")]
    servers = [s.strip() for s in options.servers.split(",")]
    unknown = [m for m in models if m not in MODELS] + [
        s for s in servers if s not in SERVE_OPTIONS
    ]
    if unknown:
        parser().error(f"unknown model or server: {', '.join(unknown)}")
    if options.quick:
        options.rounds, requests = 1, {1: 20, 8: 60, 32: 120}
    else:
        requests = {1: 40, 8: 160, 32: 320}
    if options.requests:
        requests = dict.fromkeys(CONCURRENCY, options.requests)
    load_average = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {machine()}; load average before: {load_average} (1, 5, 15 min)")
    print(f"{options.rounds} interleaved round(s); requests per level and round: "
          f"{', '.join(f'{n} at {c}' for c, n in requests.items())}; at most "
          f"{options.duration:g} s each")  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as folder:
        for name in models:
            results[name] = run_model(name, Path(folder), options, requests, servers)
            print_model(name, results[name])
    load_average = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nload average after: {load_average} (1, 5, 15 min)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
