"""``python -m benchmarks.inference``: one checkpoint, every way of running it, side by side.

    python -m benchmarks.inference                         # fits the digits CNN first (~1 min)
    python -m benchmarks.inference --cnn_ckpt PATH.ckpt    # a digits CNN checkpoint of yours
    python -m benchmarks.run_all inference                 # the same, inside make bench

For the digits CNN (a trained checkpoint, its own test split) and ResNet18 (random weights at
64 px: no test split, so no accuracy), each variant in VARIANTS: eager fp32, eager bf16 autocast,
torch.compile, ONNX Runtime fp32 and int8 (QDQ per channel), PT2E int8 (X86InductorQuantizer,
compiled). Per variant: latency of one image (median and p99 over LATENCY_CALLS calls),
throughput at batch 64 (median of THROUGHPUT_CALLS batches), test accuracy and top-1 agreement with
eager fp32, and the file size where the variant is a file. Threads: torch and ONNX Runtime both use
``torch.get_num_threads()``, printed with the machine.

A variant is one entry of VARIANTS: a name and a function that builds a predictor from the model
(``Model``) in a scratch folder, or returns the reason it is not available. A pruned network
(project/deploy/prune.py) is one more entry that builds the pruned network and returns eager fp32's
predictor of it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.common import machine, table
from project.deploy.onnx_int8 import quantize_onnx
from project.deploy.parity import Predict, compare, logits_of, onnx_predict, torch_predict
from project.deploy.pt2e_int8 import compiled, quantize_pt2e

LATENCY_CALLS = 200
THROUGHPUT_CALLS = 10
THROUGHPUT_BATCH = 64


@dataclass
class Model:
    name: str
    network: nn.Module  # eval mode, fp32
    settings: dict  # class_names, image_size, mean, std (as a checkpoint stores them)
    calibration: torch.Tensor  # training images for int8
    test: tuple[torch.Tensor, torch.Tensor] | None  # the test split, when there is one


@dataclass
class Built:
    predict: Predict
    file: Path | None = None  # the deployable file, for its size


Builder = Callable[[Model, Path], Built]


# ---------------------------------------------------------------------------- the variants


def eager_fp32(model: Model, folder: Path) -> Built:
    file = folder / "weights.pt"
    torch.save(model.network.state_dict(), file)  # the fp32 weights, for the size column
    return Built(torch_predict(model.network), file)


def eager_bf16(model: Model, folder: Path) -> Built:
    def run(images):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.network(images)

    return Built(torch_predict(run))


def compiled_fp32(model: Model, folder: Path) -> Built:
    return Built(torch_predict(torch.compile(model.network, dynamic=False)))


def onnx_fp32(model: Model, folder: Path) -> Built:
    from project.deploy.export import write_onnx

    file = write_onnx(model.network, model.settings, folder / "fp32.onnx")
    return Built(onnx_predict(file, threads=torch.get_num_threads()), file)


def onnx_int8(model: Model, folder: Path) -> Built:
    fp32 = folder / "fp32.onnx"
    if not fp32.exists():
        onnx_fp32(model, folder)
    file = quantize_onnx(fp32, model.calibration, model.settings, folder / "int8.onnx")
    return Built(onnx_predict(file, threads=torch.get_num_threads()), file)


def pt2e_int8(model: Model, folder: Path) -> Built:
    file = quantize_pt2e(model.network, model.calibration, model.settings, folder / "int8.pt2")
    module, _ = compiled(file)
    return Built(torch_predict(module), file)


VARIANTS: dict[str, Builder] = {
    "eager fp32": eager_fp32,
    "eager bf16 autocast": eager_bf16,
    "torch.compile fp32": compiled_fp32,
    "ONNX Runtime fp32": onnx_fp32,
    "ONNX Runtime int8": onnx_int8,
    "PT2E int8 (compiled)": pt2e_int8,
}


# ---------------------------------------------------------------------------- measuring


def seconds_per_call(predict: Predict, batch: np.ndarray, calls: int) -> list[float]:
    predict(batch)
    predict(batch)  # warm-up: first calls compile, allocate, pick kernels
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - started)
    return times


def measure(model: Model, name: str, built: Built, reference) -> list[str]:
    size = model.settings["image_size"]
    torch.manual_seed(0)
    one = torch.randn(1, 3, size, size).numpy()
    batch = torch.randn(THROUGHPUT_BATCH, 3, size, size).numpy()
    latency = np.array(seconds_per_call(built.predict, one, LATENCY_CALLS)) * 1e3
    batches = seconds_per_call(built.predict, batch, THROUGHPUT_CALLS)
    accuracy = agreement = "n/a"
    if model.test is not None:
        result = compare(reference, logits_of(built.predict, model.test[0]), model.test[1])
        accuracy, agreement = f"{result['acc']:.4f}", f"{result['agreement']:.2%}"
    megabytes = f"{built.file.stat().st_size / 1e6:.2f}" if built.file else "-"
    return [
        name,
        f"{np.median(latency):.2f}",
        f"{np.percentile(latency, 99):.2f}",
        f"{THROUGHPUT_BATCH / statistics.median(batches):.0f}",
        accuracy,
        agreement,
        megabytes,
    ]


def run_model(model: Model) -> None:
    reference = None
    if model.test is not None:
        reference = logits_of(torch_predict(model.network), model.test[0])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as folder:
        for name, build in VARIANTS.items():
            try:
                built = build(model, Path(folder))
            except Exception as error:  # a variant that does not work here: said, not hidden
                rows.append(
                    [name, f"not available: {type(error).__name__}: {error}"[:90]] + [""] * 5
                )
                continue
            rows.append(measure(model, name, built, reference))
    header = ["variant", "batch 1 median ms", "p99 ms", "batch 64 img/s", "test acc",
              "agreement", "file MB"]  # fmt: skip
    table(model.name, header, rows)


# ---------------------------------------------------------------------------- the models


def digits_checkpoint(path: str | None) -> Path:
    """The given checkpoint, else a fresh 2-epoch fit of configs/cnn.yaml (its best)."""
    if path:
        return Path(path)
    log_dir = Path(tempfile.mkdtemp(prefix="bench_inference_fit_"))
    command = [sys.executable, "-m", "project", "fit", "--config", "configs/cnn.yaml",
               "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false",
               f"--trainer.logger.init_args.save_dir={log_dir}"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return next(log_dir.rglob("best-*.ckpt"))


def digits_cnn(path: Path, calibration: int) -> Model:
    from project.deploy.checkpoint_data import checkpoint_data, split_tensors
    from project.deploy.export import network_from_checkpoint
    from project.runs.checkpoints import load_checkpoint

    network, settings = network_from_checkpoint(path)
    data = checkpoint_data(load_checkpoint(path), path)
    images, _ = split_tensors(data, "train", calibration)
    return Model(f"digits CNN ({path.name})", network, settings, images,
                 split_tensors(data, "test"))  # fmt: skip


def random_resnet18(calibration: int, size: int = 64) -> Model:
    from project.models.resnet import ResNetTransfer

    torch.manual_seed(0)
    network = ResNetTransfer(10, weights=None).eval()
    settings = {"class_names": [str(i) for i in range(10)], "image_size": size,
                "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
    images = torch.randn(calibration, 3, size, size)  # random weights: random calibration
    return Model(f"ResNet18, random weights at {size} px", network, settings, images, None)


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference")
    parser.add_argument("--cnn_ckpt", default=None, help="digits CNN checkpoint (else a fit)")
    parser.add_argument("--calibration", type=int, default=128)
    options = parser.parse_args([] if args is None else args)
    threads = torch.get_num_threads()
    print(f"machine: {machine()}; torch and ONNX Runtime threads: {threads}")
    run_model(digits_cnn(digits_checkpoint(options.cnn_ckpt), options.calibration))
    run_model(random_resnet18(options.calibration))


if __name__ == "__main__":
    main(sys.argv[1:])
