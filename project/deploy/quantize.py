"""``python -m project quantize``: static int8 after training, measured against the fp32 model.

    python -m project quantize --ckpt_path CKPT                      # both backends where they work
    python -m project quantize --ckpt_path CKPT --backend onnxruntime --calibration 256 \\
        --output model-int8.onnx
    python -m project quantize --ckpt_path CKPT --backend pt2e --output model-int8.pt2

Calibrates on ``--calibration`` images of the checkpoint's own training split, with its own
evaluation preprocessing (the data pipeline rebuilt from the checkpoint:
project/deploy/checkpoint_data.py).
Backends: ``onnxruntime`` (QDQ, per-channel weights: project/deploy/onnx_int8.py) writes an
``.onnx`` file; ``pt2e`` (torch.export + torchao's X86InductorQuantizer, run under torch.compile:
project/deploy/pt2e_int8.py) writes a ``.pt2`` program; ``auto`` writes both (the output name with
``.onnx`` and ``.pt2``), PT2E only where it works here (otherwise one line says why). Each file
carries the metadata of ``export`` (class names, image size, mean, std). Then fp32 and int8 are
evaluated on the test split: both accuracies, their top-1 agreement and both file sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from project.core.errors import InputError, one_line
from project.deploy.checkpoint_data import checkpoint_data, split_tensors
from project.deploy.export import check_provider, network_from_checkpoint, write_onnx
from project.deploy.files import check_writable
from project.deploy.onnx_int8 import quantize_onnx
from project.deploy.parity import compare, logits_of, onnx_predict, torch_predict
from project.deploy.pt2 import export_program, save_program
from project.deploy.pt2e_int8 import compiled, quantize_pt2e
from project.runs.checkpoints import load_checkpoint


def outputs(options) -> dict[str, Path]:
    """The file of each chosen backend."""
    output = Path(options.output)
    if options.backend == "auto":
        return {"onnxruntime": output.with_suffix(".onnx"), "pt2e": output.with_suffix(".pt2")}
    return {options.backend: output}


def row(name: str, fp32_size: int, int8_path: Path, result: dict) -> str:
    return (
        f"{name:<12} fp32 acc {result['reference_acc']:.4f}  int8 acc {result['acc']:.4f}  "
        f"top-1 agreement {result['agreement']:.2%}  max |logit diff| {result['max_abs_diff']:.3f}"
        f"  fp32 {fp32_size / 1e6:.2f} MB  int8 {int8_path.stat().st_size / 1e6:.2f} MB "
        f"({int8_path.stat().st_size / fp32_size:.2f}x)  -> {int8_path}"
    )


def run_onnxruntime(network, settings, calibration, test, reference, output, provider) -> str:
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".quantize-") as folder:
        fp32 = write_onnx(network, settings, Path(folder) / "fp32.onnx")
        fp32_size = fp32.stat().st_size
        quantize_onnx(fp32, calibration, settings, output)
    result = compare(reference, logits_of(onnx_predict(output, provider), test[0]), test[1])
    return row("onnxruntime", fp32_size, output, result)


def run_pt2e(network, settings, calibration, test, reference, output) -> str:
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".quantize-") as folder:
        program = export_program(network, settings["image_size"])
        fp32_size = save_program(program, settings, Path(folder) / "fp32.pt2").stat().st_size
    quantize_pt2e(network, calibration, settings, output)
    module, _ = compiled(output)
    result = compare(reference, logits_of(torch_predict(module), test[0]), test[1])
    return row("pt2e", fp32_size, output, result)


def quantize(options) -> list[str]:
    """Every chosen backend's row; PT2E's failure under ``auto`` becomes a line, not an error."""
    files = {name: check_writable(path) for name, path in outputs(options).items()}
    if "onnxruntime" in files:
        check_provider(options.provider)
    network, settings = network_from_checkpoint(options.ckpt_path, options.trust_class_paths)
    data = checkpoint_data(load_checkpoint(options.ckpt_path), options.ckpt_path)
    calibration, _ = split_tensors(data, "train", options.calibration)
    test = split_tensors(data, "test")
    reference = logits_of(torch_predict(network), test[0])
    rows = []
    if "onnxruntime" in files:
        rows.append(
            run_onnxruntime(
                network,
                settings,
                calibration,
                test,
                reference,
                files["onnxruntime"],
                options.provider,
            )
        )
    if "pt2e" in files:
        try:
            rows.append(run_pt2e(network, settings, calibration, test, reference, files["pt2e"]))
        except Exception as error:  # auto: ONNX Runtime's result stands; say why PT2E did not
            if options.backend == "pt2e":
                raise
            rows.append(
                f"pt2e         not available with torch {torch.__version__}: "
                f"{type(error).__name__}: {one_line(error).splitlines()[0]}"
            )
    return rows


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m project quantize",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of either loop")
    parser.add_argument(
        "--calibration",
        type=int,
        default=256,
        help="training images that calibrate the activation ranges",
    )
    parser.add_argument(
        "--output",
        default="model-int8.onnx",
        help="the int8 file (auto: this name with .onnx and with .pt2)",
    )
    parser.add_argument("--backend", choices=("auto", "onnxruntime", "pt2e"), default="auto")
    parser.add_argument(
        "--provider",
        default="CPUExecutionProvider",
        help="ONNX Runtime execution provider that evaluates the int8 file",
    )
    parser.add_argument(
        "--trust_class_paths",
        action="store_true",
        help="import classes outside project. and torch. that the checkpoint "
        "names: only for checkpoints you trust",
    )
    options = parser.parse_args(args)
    if options.calibration < 1:
        parser.error("--calibration: at least 1 image")
    try:
        rows = quantize(options)
    except InputError as error:
        print(f"error: {' '.join(one_line(error).split())}", file=sys.stderr)  # one line
        return 2
    print(
        f"static int8, calibrated on {options.calibration} training images; "
        "fp32 = the checkpoint in PyTorch, evaluated on the test split:"
    )
    for line in rows:
        print(line)
    return 0
