"""Where ONNX Runtime spends an inference, fp32 against int8: its own profiler, by operator type.

    python -m benchmarks.int8_profile --ckpt_path CKPT          # the checkpoint's image size
    python -m benchmarks.int8_profile --ckpt_path CKPT --size 224

Exports the checkpoint to fp32 ONNX and quantizes it as ``python -m project quantize`` does (QDQ,
per-channel weights, calibrated on the checkpoint's stored validation images: speed does not depend
on which), then runs CALLS batches of BATCH random images through each with ONNX Runtime's profiler
on (``SessionOptions.enable_profiling``) and prints, per operator type of the optimized graph, the
total kernel time and its share: what int8 speeds up (the convolutions, run as QLinearConv, and the
residual adds, QLinearAdd: fused int8 kernels) and what it adds (QuantizeLinear / DequantizeLinear
left between operators that have no int8 kernel). The reason the int8 goal is or is not met is
there.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from project.deploy.checkpoint_data import stored_sample
from project.deploy.export import network_from_checkpoint, write_onnx
from project.deploy.onnx_int8 import quantize_onnx
from project.runs.checkpoints import load_checkpoint

BATCH = 32
CALLS = 20


def profile(path: Path, batch, threads: int) -> tuple[dict[str, float], float]:
    """(microseconds per operator type per batch, wall ms per batch) from ORT's profile."""
    import time

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {"images": batch})  # warm-up
    started = time.perf_counter()
    for _ in range(CALLS):
        session.run(None, {"images": batch})
    wall = (time.perf_counter() - started) / CALLS * 1e3
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / (CALLS + 1)
    return dict(totals), wall


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.int8_profile")
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--size", type=int, default=None, help="image size (default: the ckpt's)")
    options = parser.parse_args(args)
    checkpoint = load_checkpoint(options.ckpt_path)
    network, settings = network_from_checkpoint(options.ckpt_path, checkpoint=checkpoint)
    size = options.size or settings["image_size"]
    settings = {**settings, "image_size": size}
    sample = stored_sample(checkpoint)
    calibration = sample[0] if sample is not None and size == sample[0].shape[-1] else None
    if calibration is None:
        calibration = torch.randn(32, 3, size, size, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    batch = torch.randn(BATCH, 3, size, size, generator=torch.Generator().manual_seed(1)).numpy()
    with tempfile.TemporaryDirectory(prefix="int8_profile_") as name:
        folder = Path(name)
        fp32 = write_onnx(network, settings, folder / "fp32.onnx")
        int8 = quantize_onnx(fp32, calibration, settings, folder / "int8.onnx")
        results = {label: profile(path, batch, threads) for label, path in
                   (("fp32", fp32), ("int8", int8))}  # fmt: skip
    print(f"ONNX Runtime profile, batch {BATCH} at {size} px, {threads} threads, {CALLS} calls, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for label, (totals, wall) in results.items():
        kernel = sum(totals.values())
        print(f"\n{label}: {wall:.1f} ms per batch (wall), {kernel / 1e3:.1f} ms in kernels")
        for op, micros in sorted(totals.items(), key=lambda item: -item[1]):
            print(f"  {op:28s} {micros / 1e3:8.2f} ms  {micros / kernel:6.1%}")
    ratio = results["fp32"][1] / results["int8"][1]
    print(f"\nint8 / fp32 speed (wall, not interleaved): {ratio:.2f}x")


if __name__ == "__main__":
    main()
