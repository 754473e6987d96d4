"""``python -m project quantize``: static int8 after training, measured against the fp32 model.

    python -m project quantize --ckpt_path CKPT                      # both backends where they work
    python -m project quantize --ckpt_path CKPT --backend onnxruntime --calibration 256 \\
        --output model-int8.onnx
    python -m project quantize --ckpt_path CKPT --backend pt2e --output model-int8.pt2
    python -m project quantize --ckpt_path CKPT --calibration_root FOLDER   # images from elsewhere

Calibrates on ``--calibration`` images (default: 256, or the whole training split where it is
smaller) of the checkpoint's own training split, with its own evaluation preprocessing (the data
pipeline rebuilt from the checkpoint: project/deploy/checkpoint_data.py); on the images of
``--calibration_root`` (any folder, prepared as serve prepares an upload) when given; on the
validation images stored in the checkpoint where the training images are not at their recorded
path (the checkpoint alone). One line says which.
Backends: ``onnxruntime`` (QDQ, per-channel weights: project/deploy/onnx_int8.py) writes an
``.onnx`` file; ``pt2e`` (torch.export + torchao's X86InductorQuantizer, run under torch.compile:
project/deploy/pt2e_int8.py) writes a ``.pt2`` program; ``auto`` writes both (the output name with
``.onnx`` and ``.pt2``), PT2E only where it works here (otherwise one line says why) and where it
made at least MIN_INT8_SHARE of the convolution/linear weights int8 (otherwise one line says how
much, and ONNX Runtime's file stands alone). Each file carries the metadata of ``export`` (class
names, image size, mean, std). Then fp32 and int8 are evaluated on the test split, else the
validation split, else the stored validation images (one line says which): both accuracies, their
top-1 agreement and both file sizes; and their speed in images/s at ``--speed_batch``, ONNX
Runtime fp32 against each int8 file, ``--speed_rounds`` interleaved rounds
(project/deploy/speed.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from project.core.errors import InputError, one_line
from project.deploy.checkpoint_data import (
    Images,
    available_data,
    evaluation_images,
    folder_images,
    split_tensors,
    stored_sample,
)
from project.deploy.export import check_provider, network_from_checkpoint, write_onnx
from project.deploy.files import check_writable
from project.deploy.onnx_int8 import quantize_onnx
from project.deploy.parity import compare, logits_of, onnx_predict, torch_predict
from project.deploy.pt2 import export_program, save_program
from project.deploy.pt2e_int8 import compiled, int8_share, quantize_pt2e
from project.deploy.speed import conditions, example_batch, interleaved_seconds, rate_line
from project.runs.checkpoints import load_checkpoint

DEFAULT_CALIBRATION = 256  # or the whole training split, where it is smaller
MIN_INT8_SHARE = 0.9  # of the convolution/linear weight elements, for PT2E's file to count as int8


def outputs(options) -> dict[str, Path]:
    """The file of each chosen backend."""
    output = Path(options.output)
    if options.backend == "auto":
        return {"onnxruntime": output.with_suffix(".onnx"), "pt2e": output.with_suffix(".pt2")}
    return {options.backend: output}


def row(name: str, fp32_size: int, int8_path: Path, result: dict) -> str:
    accuracy = "fp32 acc n/a     int8 acc n/a    "  # random images: no labels
    if result["acc"] is not None:
        accuracy = f"fp32 acc {result['reference_acc']:.4f}  int8 acc {result['acc']:.4f}"
    return (
        f"{name:<12} {accuracy}  "
        f"top-1 agreement {result['agreement']:.2%}  max |logit diff| {result['max_abs_diff']:.3f}"
        f"  fp32 {fp32_size / 1e6:.2f} MB  int8 {int8_path.stat().st_size / 1e6:.2f} MB "
        f"({int8_path.stat().st_size / fp32_size:.2f}x)  -> {int8_path}"
    )


# ---------------------------------------------------------------------------- calibration


def calibration_images(checkpoint: dict, options, settings: dict) -> Images:
    """The calibration images (``--calibration_root``, else the training split, else the stored
    validation images) and the line that says which."""
    count = options.calibration
    if options.calibration_root is not None:
        images = folder_images(options.calibration_root, settings, count or DEFAULT_CALIBRATION)
        return Images(images, None, f"{len(images)} images of {options.calibration_root}")
    data, missing = available_data(checkpoint, options.ckpt_path)
    if data is not None:
        available = len(data._labeled("train"))
        limit = count if count is not None else min(DEFAULT_CALIBRATION, available)
        images, _ = split_tensors(data, "train", limit)
        where = data.root if data.root is not None else "the bundled digits"
        return Images(images, None, f"{limit} of the {available} training images of {where}")
    sample = stored_sample(checkpoint)
    if sample is None:
        raise InputError(
            f"{options.ckpt_path}: {missing}, and the checkpoint stores no sample images: "
            "give calibration images with --calibration_root FOLDER"
        )
    images = sample[0][:count] if count is not None else sample[0]
    return Images(
        images,
        None,
        f"the {len(images)} validation images stored in the checkpoint ({missing}; "
        "--calibration_root FOLDER for others)",
    )


# ---------------------------------------------------------------------------- the backends


def run_onnxruntime(network, settings, calibration, test, reference, folder, output, provider):
    fp32 = write_onnx(network, settings, folder / "fp32.onnx")
    quantize_onnx(fp32, calibration, settings, output)
    result = compare(reference, logits_of(onnx_predict(output, provider), test.images), test.labels)
    return row("onnxruntime", fp32.stat().st_size, output, result)


def run_pt2e(network, settings, calibration, test, reference, folder, output) -> list[str]:
    """PT2E's row, and a line when too few of its weights became int8 (then its file is not
    kept: ``TooLittleInt8``)."""
    program = export_program(network, settings["image_size"])
    fp32_size = save_program(program, settings, folder / "fp32.pt2").stat().st_size
    counts = quantize_pt2e(network, calibration, settings, output)
    share = int8_share(counts)
    int8_layers, layers = counts["layers"]
    note = (
        f"pt2e         int8 weights: {share:.1%} of the convolution/linear weight elements "
        f"({int8_layers} of {layers} layers; {counts['float']:,} elements left float)"
    )
    if share < MIN_INT8_SHARE:
        raise TooLittleInt8(f"{note}: below {MIN_INT8_SHARE:.0%}, not an int8 model")
    module, _ = compiled(output)
    result = compare(reference, logits_of(torch_predict(module), test.images), test.labels)
    return [row("pt2e", fp32_size, output, result), note]


class TooLittleInt8(RuntimeError):
    """PT2E left most weights float (a graph the quantizer could not see into)."""


def pt2e_rows(options, files, *args) -> list[str]:
    """PT2E's lines; its failure under ``auto`` is a line (ONNX Runtime's file stands alone)."""
    try:
        return run_pt2e(*args, files["pt2e"])
    except TooLittleInt8 as error:
        if options.backend == "pt2e":  # asked for by name: kept, and said plainly
            return [str(error) + f"; kept as asked: {files['pt2e']}"]
        files["pt2e"].unlink(missing_ok=True)
        return [str(error) + "; not kept (ONNX Runtime's file stands)"]
    except Exception as error:  # auto: ONNX Runtime's result stands; say why PT2E did not
        if options.backend == "pt2e":
            raise
        files["pt2e"].unlink(missing_ok=True)
        return [
            f"pt2e         not available with torch {torch.__version__}: "
            f"{type(error).__name__}: {one_line(error).splitlines()[0]}"
        ]


def speed(options, files, folder: Path, settings: dict) -> list[str]:
    """images/s of ONNX Runtime fp32 and of each int8 file written, interleaved."""
    if options.speed_rounds == 0:
        return []
    threads = torch.get_num_threads()
    candidates = {}
    fp32 = folder / "fp32.onnx"
    if not fp32.exists():
        write_onnx(options.network, settings, fp32)
    candidates["ORT fp32"] = onnx_predict(fp32, options.provider, threads)
    if files.get("onnxruntime") is not None and files["onnxruntime"].exists():
        candidates["ORT int8"] = onnx_predict(files["onnxruntime"], options.provider, threads)
    if files.get("pt2e") is not None and files["pt2e"].exists():
        module, _ = compiled(files["pt2e"])
        candidates["PT2E int8 (compiled)"] = torch_predict(module)
    batch = example_batch(settings["image_size"], options.speed_batch)
    seconds = interleaved_seconds(candidates, batch, options.speed_rounds)
    return [
        f"speed ({conditions(options.speed_batch, options.speed_rounds)}):",
        "  " + rate_line(seconds, "ORT fp32", options.speed_batch),
    ]


def quantize(options) -> list[str]:
    """Every line to print: what calibrated and evaluated, each backend's row, the speed."""
    files = {name: check_writable(path) for name, path in outputs(options).items()}
    if "onnxruntime" in files:
        check_provider(options.provider)
    checkpoint = load_checkpoint(options.ckpt_path)
    network, settings = network_from_checkpoint(
        options.ckpt_path, options.trust_class_paths, checkpoint
    )
    options.network = network
    calibration = calibration_images(checkpoint, options, settings)
    test = evaluation_images(checkpoint, options.ckpt_path, "auto")
    lines = [
        f"static int8, calibrated on {calibration.description}",
        f"fp32 = the checkpoint in PyTorch; evaluated on {test.description}:",
    ]
    reference = logits_of(torch_predict(network), test.images)
    first = next(iter(files.values()))
    with tempfile.TemporaryDirectory(dir=first.parent, prefix=".quantize-") as name:
        folder = Path(name)
        args = (network, settings, calibration.images, test, reference, folder)
        if "onnxruntime" in files:
            lines.append(run_onnxruntime(*args, files["onnxruntime"], options.provider))
        if "pt2e" in files:
            lines.extend(pt2e_rows(options, files, *args))
        lines.extend(speed(options, files, folder, settings))
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m project quantize",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of either loop")
    parser.add_argument(
        "--calibration",
        type=int,
        default=None,
        help=f"images that calibrate the activation ranges (default: {DEFAULT_CALIBRATION}, or "
        "every training image where there are fewer)",
    )
    parser.add_argument(
        "--calibration_root",
        default=None,
        help="a folder of images to calibrate on instead of the training split (sub-folders "
        "too; prepared with the checkpoint's image size, crop, mean and std)",
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
        "--speed_batch", type=int, default=32, help="batch size of the images/s measurement"
    )
    parser.add_argument(
        "--speed_rounds",
        type=int,
        default=5,
        help="interleaved rounds of the images/s measurement (0: no measurement)",
    )
    parser.add_argument(
        "--trust_class_paths",
        action="store_true",
        help="import classes outside project. and torch. that the checkpoint "
        "names: only for checkpoints you trust",
    )
    return parser


def check_options(options) -> None:
    if options.calibration is not None and options.calibration < 1:
        raise InputError(f"--calibration {options.calibration}: at least 1 image")
    if options.speed_batch < 1:
        raise InputError(f"--speed_batch {options.speed_batch}: at least 1")
    if options.speed_rounds < 0:
        raise InputError(f"--speed_rounds {options.speed_rounds}: 0 or more")


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    try:
        check_options(options)
        lines = quantize(options)
    except InputError as error:
        print(f"error: {' '.join(one_line(error).split())}", file=sys.stderr)  # one line
        return 2
    for line in lines:
        print(line)
    return 0
