"""``python -m project export``: a checkpoint (either loop) as an ONNX file, ready for onnxruntime,
or as a torch.export program and AOTInductor package; each checked against the checkpoint (top-1
agreement must be 100%; the max |logit difference| is printed) on its test split, else its
validation split, else (the data not at its recorded path: the checkpoint alone) the validation
images the checkpoint stores (``--check_split``, project/deploy/checkpoint_data.py); one line says
which.

    python -m project export --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt \
        --output model.onnx
    python -m project export --ckpt_path CKPT --format pt2 --output model.pt2
        # model.pt2 (torch.export.load) and model.aoti.pt2 (torch._inductor.aoti_load_package);
        # metadata: project/deploy/pt2.py

What training adds to the network (the transfer model's feature cache, its frozen backbone's
no-grad region) is left out: the graph is the network's inference path
(``TransferNetwork.for_inference``).

The file takes ``images`` (N x 3 x S x S float32, any N, normalized as in training) and returns
``logits`` (N x classes). Its metadata holds what a deployment needs besides the weights:
``class_names`` (JSON list), ``image_size``, ``mean`` and ``std`` (JSON lists). Use it with

    import json, onnxruntime
    session = onnxruntime.InferenceSession("model.onnx")
    meta = session.get_modelmeta().custom_metadata_map
    logits = session.run(None, {"images": batch})[0]
    names = json.loads(meta["class_names"])
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from project.core.errors import InputError, one_line
from project.core.recipe import LIGHTNING_MODULES, RECIPES
from project.deploy.checkpoint_data import CHOICES, Images, evaluation_images
from project.deploy.files import atomic_path, check_writable
from project.deploy.parity import compare, logits_of, onnx_predict, torch_predict
from project.deploy.pt2 import (
    aoti_path,
    compiler_missing,
    export_program,
    load_aoti,
    load_program,
    save_aoti,
    save_program,
)
from project.runs.checkpoints import (
    CheckpointError,
    fill_network,
    load_checkpoint,
    model_arguments,
    network_state,
)

TRUSTED_PREFIXES = ("project.", "torch.")


def class_paths(value) -> list[str]:
    """Every ``class_path`` in a checkpoint's hyperparameters (the network's, the optimizer's)."""
    if isinstance(value, dict):
        own = [value["class_path"]] if isinstance(value.get("class_path"), str) else []
        return own + [path for item in value.values() for path in class_paths(item)]
    if isinstance(value, list):
        return [path for item in value for path in class_paths(item)]
    return []


def network_from_checkpoint(
    path: str | Path, trust: bool = False, checkpoint: dict | None = None
) -> tuple[nn.Module, dict]:
    """The trained network as deployed (eval mode, no training-time machinery:
    ``inference_network``) and the checkpoint's inference settings (class names, image size,
    mean, std; the stored sample images left out: ``checkpoint_data.stored_sample``).

    ``trust``: also import classes outside this project and torch that the checkpoint names
    (a network from your own package, ``model.init_args.network``); off by default, because a
    checkpoint must not choose which code gets imported. ``checkpoint``: the file's contents,
    when the caller has read them already."""
    from jsonargparse import ArgumentParser

    if checkpoint is None:
        checkpoint = load_checkpoint(path)  # weights_only=True
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", "")
    # Only our own model classes: a checkpoint must not choose which code gets imported.
    if not class_path.startswith("project."):
        raise CheckpointError(f"{path}: model class {class_path!r} is not one of this project's")
    foreign = [p for p in class_paths(hparams) if not p.startswith(TRUSTED_PREFIXES)]
    if foreign and not trust:
        raise CheckpointError(
            f"{path}: names {', '.join(sorted(set(foreign)))}, outside this project and torch; "
            "export it with --trust_class_paths if you wrote that code"
        )
    module_name, class_name = class_path.rsplit(".", 1)
    # The LightningModule's plain recipe (project/core/recipe.py) builds the same network from
    # the same arguments, without Lightning: export, quantize and serve import no Lightning.
    recipe_class = RECIPES.get(class_name) if module_name in LIGHTNING_MODULES else None
    if recipe_class is None:
        raise CheckpointError(f"{path}: {class_path!r} is not one of this project's classifiers")
    # The same parsing LightningCLI does: class paths in the arguments become classes/callables.
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(recipe_class, "model")
    try:
        config = parser.parse_object({"model": model_arguments(hparams)})
        model = parser.instantiate_classes(config).model  # ResNet: no pretrained weights read
    except Exception as error:
        raise CheckpointError(
            f"{path}: its model arguments do not build {class_name}: "
            f"{str(error).strip().splitlines()[0]}"
        ) from None
    fill_network(model.network, network_state(checkpoint, path), path)
    if "inference" not in checkpoint:
        raise CheckpointError(f"{path}: no class names / image size stored (an older checkpoint?)")
    settings = {k: v for k, v in checkpoint["inference"].items() if k != "sample"}
    return inference_network(model.network), settings


def inference_network(network: nn.Module) -> nn.Module:
    """``network`` in eval mode, without what only training uses (``for_inference``, where the
    network has one: the transfer model drops its feature cache)."""
    prepare = getattr(network, "for_inference", None)
    return prepare() if callable(prepare) else network.eval()


def write_onnx(network: nn.Module, settings: dict, path: str | Path) -> Path:
    """Write ``network`` as ONNX to ``path`` (not atomic: see export_onnx) with a dynamic batch
    dimension and ``settings`` as metadata."""
    import onnx  # imported here: only export needs it

    size = settings["image_size"]
    example = torch.zeros(2, 3, size, size)
    torch.onnx.export(
        network,
        (example,),
        path,
        input_names=["images"],
        output_names=["logits"],
        dynamo=True,  # torch.export-based exporter; the batch size stays symbolic:
        verbose=False,  # no progress lines on stdout
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    model = onnx.load(path)
    for key, value in settings.items():
        entry = model.metadata_props.add()  # strings only: lists as JSON
        entry.key = key
        entry.value = json.dumps(value) if isinstance(value, list) else str(value)
    onnx.save(model, path)  # one self-contained file: the weights are loaded into ``model``
    # torch.onnx.export may have put the weights beside it (PATH.data): not needed any more.
    Path(f"{path}.data").unlink(missing_ok=True)
    return Path(path)


def export_onnx(network: nn.Module, settings: dict, output: str | Path) -> Path:
    """``write_onnx`` to ``output`` atomically: never a half-written model.onnx."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as temporary:
        write_onnx(network, settings, temporary)
    return output


def check_provider(provider: str) -> str:
    """``provider`` if this ONNX Runtime build has it, else one line listing the ones it has."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if provider not in available:
        raise InputError(
            f"--provider {provider}: not available in this onnxruntime "
            f"{onnxruntime.__version__} (available: {', '.join(available)})"
        )
    return provider


def report(name: str, path: Path, size: int, result: dict) -> str:
    accuracy = "accuracy n/a (no labels)"
    if result["acc"] is not None:
        accuracy = f"accuracy {result['acc']:.4f} (checkpoint {result['reference_acc']:.4f})"
    return (
        f"{name} {path} ({size / 1e6:.2f} MB): on {result['images']} images "
        f"top-1 agreement {result['agreement']:.2%} with the checkpoint, "
        f"max |logit difference| {result['max_abs_diff']:.2e}, {accuracy}"
    )


def verified(name: str, path: Path, written: Path, predict, check: Images, reference) -> None:
    """Print the parity of ``written`` (to become ``path``) with the checkpoint; an error unless
    every top-1 agrees."""
    result = compare(reference, logits_of(predict, check.images), check.labels)
    print(report(name, path, written.stat().st_size, result))
    if result["agreement"] < 1.0:
        raise ExportMismatch(
            f"{name}: top-1 differs from the checkpoint on "
            f"{1 - result['agreement']:.2%} of the images; not written"
        )


class ExportMismatch(RuntimeError):
    """An exported file predicts other classes than its checkpoint (a bug, exit status 1)."""


def export_checked(network, settings, options, test: Images) -> list[Path]:
    """Write the chosen format(s) beside each other, each checked before it is renamed into
    place (a file that fails the check is never left behind)."""
    reference = logits_of(torch_predict(network), test.images)
    output = Path(options.output or f"model.{options.format}")
    if options.format == "onnx":
        with atomic_path(output) as temporary:
            write_onnx(network, settings, temporary)
            verified(
                "onnx",
                output,
                temporary,
                onnx_predict(temporary, options.provider),
                test,
                reference,
            )
        return [output]
    program = export_program(network, settings["image_size"])
    with atomic_path(output) as temporary:
        save_program(program, settings, temporary)
        loaded, _ = load_program(temporary)
        verified("pt2", output, temporary, torch_predict(loaded), test, reference)
    written = [output]
    missing = "--no_aoti given" if options.no_aoti else compiler_missing()
    if missing:
        print(f"AOTInductor package skipped: {missing}")
        return written
    package = aoti_path(output)
    with atomic_path(package) as temporary:
        save_aoti(program, settings, temporary)
        verified("aoti", package, temporary, torch_predict(load_aoti(temporary)), test, reference)
    return [*written, package]


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m project export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of either loop")
    parser.add_argument(
        "--format",
        choices=("onnx", "pt2"),
        default="onnx",
        help="onnx (ONNX Runtime) or pt2 (torch.export program, plus an "
        "AOTInductor package NAME.aoti.pt2 where a C++ compiler is present)",
    )
    parser.add_argument("--output", default=None, help="the file to write (model.FORMAT)")
    parser.add_argument(
        "--provider",
        default="CPUExecutionProvider",
        help="ONNX Runtime execution provider of the check (onnx)",
    )
    parser.add_argument(
        "--no_aoti",
        action="store_true",
        help="pt2: skip the AOTInductor package (its compile takes minutes)",
    )
    parser.add_argument(
        "--check_split",
        choices=CHOICES,
        default="auto",
        help="the images of the check: auto (the default) takes the recorded data's test split, "
        "else its val split, else the validation images stored in the checkpoint; none: those "
        "stored images (random ones in a checkpoint without them)",
    )
    parser.add_argument(
        "--trust_class_paths",
        action="store_true",
        help="import the classes outside project. and torch. that the checkpoint names (your "
        "own network's package): only for checkpoints you trust",
    )
    options = parser.parse_args(args)
    try:
        check_writable(options.output or f"model.{options.format}")
        if options.format == "onnx":
            check_provider(options.provider)
        checkpoint = load_checkpoint(options.ckpt_path)
        network, settings = network_from_checkpoint(
            options.ckpt_path, options.trust_class_paths, checkpoint
        )
        test = evaluation_images(checkpoint, options.ckpt_path, options.check_split)
        print(f"checked on {test.description}")
        paths = export_checked(network, settings, options, test)
    except (InputError, ExportMismatch) as error:  # one line; 2: the input, 1: a failed check
        print(f"error: {' '.join(one_line(error).split())}", file=sys.stderr)  # one line
        return 2 if isinstance(error, InputError) else 1
    classes = len(settings["class_names"])
    for path in paths:
        print(f"wrote {path}: images N x 3 x {settings['image_size']}^2 -> logits N x {classes}")
    return 0
