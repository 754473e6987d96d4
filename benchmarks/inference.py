"""``python -m benchmarks.inference``: one checkpoint, every way of running it, side by side.

    python -m benchmarks.inference                         # fits what it needs first (minutes)
    python -m benchmarks.inference --cnn_ckpt PATH.ckpt --resnet_ckpt PATH.ckpt \\
        --pruned_ckpt PATH.ckpt                            # checkpoints of yours
    python -m benchmarks.run_all inference                 # the same, written to
                                                           # benchmarks/results/inference.json

Models: the digits CNN (a trained checkpoint, its own test split); the workshop's transfer target
(configs/resnet18.yaml + configs/transfer/target.yaml, a ResNet18 at 32 px, scored on its
validation split: the folder has no test split), fitted here when data/glyphs exists (``make
challenge-data``) and no ``--resnet_ckpt`` is given; and ResNet18 with random weights at 64 and
224 px (speed and size only). Variants (VARIANTS): eager fp32, eager bf16 autocast, torch.compile,
ONNX Runtime fp32 and int8 (QDQ per channel), PT2E int8 (X86InductorQuantizer, compiled), the
network pruned by 30% of its channels (``project.deploy.prune``; with ``--pruned_ckpt``, the
fine-tuned checkpoint ``python -m project prune`` wrote, else pruned without fine-tuning, its
accuracy then not shown) in eager fp32, and pruned + ONNX Runtime int8.

Per variant: latency of one image (median and p99 over LATENCY_ROUNDS x LATENCY_CALLS calls),
images/s at batch THROUGHPUT_BATCH (median of ROUNDS rounds of THROUGHPUT_CALLS batches) and its
ratio to ONNX Runtime fp32 (the unit of the int8 goal), accuracy and top-1 agreement with eager
fp32, and the file size where the variant is a file. Every variant of a model is measured in the
same rounds, interleaved (A, B, C, A, B, C, ...), so a busy machine slows each alike; the load
average is printed with each table. Threads: torch and ONNX Runtime both use
``torch.get_num_threads()``.
"""

from __future__ import annotations

import argparse
import os
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

LATENCY_ROUNDS = 5
LATENCY_CALLS = 20
ROUNDS = 5
THROUGHPUT_CALLS = 2
THROUGHPUT_BATCH = 32
AMOUNT = 0.3  # pruned share of channels
GLYPHS = Path("data/glyphs")


@dataclass
class Model:
    name: str
    network: nn.Module  # eval mode, fp32
    settings: dict  # class_names, image_size, mean, std (as a checkpoint stores them)
    calibration: torch.Tensor  # training images for int8
    test: tuple[torch.Tensor, torch.Tensor] | None  # the evaluation images, when there are
    pruned: nn.Module | None = None  # a fine-tuned pruned network (--pruned_ckpt)
    variants: tuple[str, ...] | None = None  # None: every variant


@dataclass
class Built:
    predict: Predict
    file: Path | None = None  # the deployable file, for its size
    scored: bool = True  # False: its accuracy means nothing (pruned, not fine-tuned)


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

    file = folder / "fp32.onnx"
    if not file.exists():
        write_onnx(model.network, model.settings, file)
    return Built(onnx_predict(file, threads=torch.get_num_threads()), file)


def onnx_int8(model: Model, folder: Path) -> Built:
    fp32 = onnx_fp32(model, folder).file
    file = quantize_onnx(fp32, model.calibration, model.settings, folder / "int8.onnx")
    return Built(onnx_predict(file, threads=torch.get_num_threads()), file)


def pt2e_int8(model: Model, folder: Path) -> Built:
    file = folder / "int8.pt2"
    quantize_pt2e(model.network, model.calibration, model.settings, file)
    module, _ = compiled(file)
    return Built(torch_predict(module), file)


def pruned_network(model: Model) -> tuple[nn.Module, bool]:
    """(the pruned network, whether it was fine-tuned)."""
    if model.pruned is not None:
        return model.pruned, True
    from project.deploy.prune import prune_network

    size = model.settings["image_size"]
    return prune_network(model.network, AMOUNT, size, None).eval().requires_grad_(False), False


def pruned_fp32(model: Model, folder: Path) -> Built:
    network, tuned = pruned_network(model)
    file = folder / "pruned.pt"
    torch.save(network.state_dict(), file)
    return Built(torch_predict(network), file, scored=tuned)


def pruned_int8(model: Model, folder: Path) -> Built:
    network, tuned = pruned_network(model)
    pruned = Model(model.name, network, model.settings, model.calibration, model.test)
    (folder / "pruned").mkdir(exist_ok=True)
    built = onnx_int8(pruned, folder / "pruned")
    built.scored = tuned
    return built


VARIANTS: dict[str, Builder] = {
    "eager fp32": eager_fp32,
    "eager bf16 autocast": eager_bf16,
    "torch.compile fp32": compiled_fp32,
    "ONNX Runtime fp32": onnx_fp32,
    "ONNX Runtime int8": onnx_int8,
    "PT2E int8 (compiled)": pt2e_int8,
    f"pruned {AMOUNT:.0%}, eager fp32": pruned_fp32,
    f"pruned {AMOUNT:.0%} + ONNX Runtime int8": pruned_int8,
}
BASELINE = "ONNX Runtime fp32"  # the int8 goal's unit: images/s against this


# ---------------------------------------------------------------------------- measuring


def interleaved(predicts: dict[str, Predict], batch: np.ndarray, rounds: int, calls: int):
    """Seconds of each call of each variant, the variants in turn in every round (every other
    round reversed), after two warm-up calls each."""
    for predict in predicts.values():
        predict(batch)
        predict(batch)  # warm-up: first calls compile, allocate, pick kernels
    times: dict[str, list[float]] = {name: [] for name in predicts}
    for round_ in range(rounds):
        order = list(predicts.items())
        for name, predict in reversed(order) if round_ % 2 else order:
            for _ in range(calls):
                started = time.perf_counter()
                predict(batch)
                times[name].append(time.perf_counter() - started)
    return times


def run_model(model: Model) -> None:
    size = model.settings["image_size"]
    reference = None
    if model.test is not None:
        reference = logits_of(torch_predict(model.network), model.test[0])
    chosen = {name: VARIANTS[name] for name in model.variants or VARIANTS}
    built, failed = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as folder:
        for name, build in chosen.items():
            try:
                built[name] = build(model, Path(folder))
            except Exception as error:  # a variant that does not work here: said, not hidden
                failed[name] = f"not available: {type(error).__name__}: {error}"[:60]
        predicts = {name: variant.predict for name, variant in built.items()}
        generator = torch.Generator().manual_seed(0)
        one = torch.randn(1, 3, size, size, generator=generator).numpy()
        batch = torch.randn(THROUGHPUT_BATCH, 3, size, size, generator=generator).numpy()
        latency = interleaved(predicts, one, LATENCY_ROUNDS, LATENCY_CALLS)
        throughput = interleaved(predicts, batch, ROUNDS, THROUGHPUT_CALLS)
        rates = {n: THROUGHPUT_BATCH / statistics.median(t) for n, t in throughput.items()}
        rows = []
        for name in chosen:
            if name in failed:
                rows.append([name, failed[name]] + [""] * 6)
                continue
            variant = built[name]
            accuracy = agreement = "n/a"
            if reference is not None and variant.scored:
                result = compare(reference, logits_of(variant.predict, model.test[0]),
                                 model.test[1])  # fmt: skip
                accuracy, agreement = f"{result['acc']:.4f}", f"{result['agreement']:.2%}"
            elif reference is not None:
                accuracy = "not fine-tuned"
            milliseconds = np.array(latency[name]) * 1e3
            versus = f"{rates[name] / rates[BASELINE]:.2f}x" if BASELINE in rates else "-"
            rows.append([
                name,
                f"{np.median(milliseconds):.2f}",
                f"{np.percentile(milliseconds, 99):.2f}",
                f"{rates[name]:.0f}",
                versus,
                accuracy,
                agreement,
                f"{variant.file.stat().st_size / 1e6:.2f}" if variant.file else "-",
            ])  # fmt: skip
    header = ["variant", "batch 1 median ms", "p99 ms", f"batch {THROUGHPUT_BATCH} img/s",
              "x ORT fp32", "accuracy", "agreement", "file MB"]  # fmt: skip
    table(f"{model.name}; load average {os.getloadavg()[0]:.1f} at the end", header, rows)


# ---------------------------------------------------------------------------- the models


def fitted(config_args: list[str], pattern: str) -> Path:
    """A fresh fit in a subprocess (its checkpoint matching ``pattern``)."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench_inference_fit_"))
    command = [sys.executable, "-m", "project", "fit", *config_args,
               "--trainer.enable_progress_bar=false",
               f"--trainer.logger.init_args.save_dir={log_dir}"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=3600)
    return next(log_dir.rglob(pattern))


def from_checkpoint(name: str, path: Path, calibration: int, pruned: Path | None) -> Model:
    from project.deploy.checkpoint_data import available_data, evaluation_images, split_tensors
    from project.deploy.export import network_from_checkpoint
    from project.runs.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(path)
    network, settings = network_from_checkpoint(path, checkpoint=checkpoint)
    data, missing = available_data(checkpoint, path)
    if data is None:
        raise SystemExit(f"{path}: {missing}")
    available = len(data._labeled("train"))
    images, _ = split_tensors(data, "train", min(calibration, available))
    test = evaluation_images(checkpoint, path, "auto")
    network_pruned = None
    if pruned is not None:
        network_pruned, _ = network_from_checkpoint(pruned)
    return Model(f"{name} ({path.name}); scored on {test.description}", network, settings,
                 images, (test.images, test.labels), network_pruned)  # fmt: skip


def random_resnet18(calibration: int, size: int, variants=None) -> Model:
    from project.models.resnet import ResNetTransfer

    torch.manual_seed(0)
    network = ResNetTransfer(10, weights=None).for_inference()
    settings = {"class_names": [str(i) for i in range(10)], "image_size": size,
                "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
    images = torch.randn(calibration, 3, size, size)  # random weights: random calibration
    name = f"ResNet18, random weights at {size} px (speed and size only)"
    return Model(name, network, settings, images, None, variants=variants)


# At 224 px a batch of 32 takes seconds on 2 cores: the variants the goals are about.
LARGE = (
    "eager fp32",
    "ONNX Runtime fp32",
    "ONNX Runtime int8",
    "PT2E int8 (compiled)",
    f"pruned {AMOUNT:.0%}, eager fp32",
    f"pruned {AMOUNT:.0%} + ONNX Runtime int8",
)


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference")
    parser.add_argument("--cnn_ckpt", default=None, help="digits CNN checkpoint (else a fit)")
    parser.add_argument(
        "--resnet_ckpt",
        default=None,
        help="transfer target checkpoint (else a fit, where data/glyphs is)",
    )
    parser.add_argument(
        "--pruned_ckpt",
        default=None,
        help="that checkpoint pruned and fine-tuned by python -m project prune",
    )
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--sizes", default="64,224", help="random-weight ResNet18 sizes")
    options = parser.parse_args([] if args is None else args)
    print(f"machine: {machine()}; torch and ONNX Runtime threads: {torch.get_num_threads()}")
    cnn = Path(options.cnn_ckpt) if options.cnn_ckpt else fitted(
        ["--config", "configs/cnn.yaml", "--trainer.max_epochs=2"], "best-*.ckpt")  # fmt: skip
    run_model(from_checkpoint("digits CNN", cnn, options.calibration, None))
    resnet = options.resnet_ckpt
    if resnet is None and (GLYPHS / "source_resnet18.pth").is_file():
        resnet = fitted(["--config", "configs/resnet18.yaml", "--config",
                         "configs/transfer/target.yaml"], "best-*.ckpt")  # fmt: skip
    if resnet is None:
        print("\n### transfer target: no data/glyphs (make challenge-data): not measured")
    else:
        pruned = Path(options.pruned_ckpt) if options.pruned_ckpt else None
        run_model(from_checkpoint("ResNet18 transfer target", Path(resnet),
                                  options.calibration, pruned))  # fmt: skip
    for size in (int(s) for s in options.sizes.split(",") if s):
        run_model(random_resnet18(64, size, LARGE if size > 64 else None))


if __name__ == "__main__":
    main(sys.argv[1:])
