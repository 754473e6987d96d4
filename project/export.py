"""``python -m project export``: a checkpoint (either loop) as an ONNX file, ready for onnxruntime.

    python -m project export --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt \
        --output model.onnx

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
import importlib
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from project.checkpoints import (
    CheckpointError,
    fill_network,
    load_checkpoint,
    model_arguments,
    network_state,
)
from project.classifier import ClassifierModule

TRUSTED_PREFIXES = ("project.", "torch.")


def class_paths(value) -> list[str]:
    """Every ``class_path`` in a checkpoint's hyperparameters (the network's, the optimizer's)."""
    if isinstance(value, dict):
        own = [value["class_path"]] if isinstance(value.get("class_path"), str) else []
        return own + [path for item in value.values() for path in class_paths(item)]
    if isinstance(value, list):
        return [path for item in value for path in class_paths(item)]
    return []


def network_from_checkpoint(path: str | Path, trust: bool = False) -> tuple[nn.Module, dict]:
    """The trained network (eval mode) and the checkpoint's inference settings.

    ``trust``: also import classes outside this project and torch that the checkpoint names
    (a network from your own package, ``model.init_args.network``); off by default, because a
    checkpoint must not choose which code gets imported."""
    from jsonargparse import ArgumentParser

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
    model_class = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(model_class, type) and issubclass(model_class, ClassifierModule)):
        raise CheckpointError(f"{path}: {class_path!r} is not one of this project's classifiers")
    # The same parsing LightningCLI does: class paths in the arguments become classes/callables.
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(model_class, "model")
    try:
        config = parser.parse_object({"model": model_arguments(hparams)})
        model = parser.instantiate_classes(config).model  # ResNet: no pretrained weights read
    except Exception as error:
        raise CheckpointError(f"{path}: its model arguments do not build {class_name}: "
                              f"{str(error).strip().splitlines()[0]}") from None  # fmt: skip
    fill_network(model.network, network_state(checkpoint, path), path)
    if "inference" not in checkpoint:
        raise CheckpointError(f"{path}: no class names / image size stored (an older checkpoint?)")
    return model.network.eval(), checkpoint["inference"]


def export_onnx(network: nn.Module, settings: dict, output: str | Path) -> Path:
    """Write ``network`` as ONNX with a dynamic batch dimension and ``settings`` as metadata."""
    import onnx  # imported here: only export needs it

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    size = settings["image_size"]
    example = torch.zeros(2, 3, size, size)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        torch.onnx.export(
            network,
            (example,),
            temporary,
            input_names=["images"],
            output_names=["logits"],
            dynamo=True,  # torch.export-based exporter; the batch size stays symbolic:
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        model = onnx.load(temporary)
        for key, value in settings.items():
            entry = model.metadata_props.add()  # strings only: lists as JSON
            entry.key = key
            entry.value = json.dumps(value) if isinstance(value, list) else str(value)
        onnx.save(model, temporary)
        os.replace(temporary, output)  # never a half-written model.onnx
    finally:
        temporary.unlink(missing_ok=True)
    return output


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m project export", description=__doc__)
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of either loop")
    parser.add_argument("--output", default="model.onnx", help="the ONNX file to write")
    parser.add_argument(
        "--trust_class_paths",
        action="store_true",
        help="import the classes outside project. and torch. that the checkpoint names (your "
        "own network's package): only for checkpoints you trust",
    )
    options = parser.parse_args(args)
    try:
        network, settings = network_from_checkpoint(options.ckpt_path, options.trust_class_paths)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = export_onnx(network, settings, options.output)
    classes = len(settings["class_names"])
    print(f"wrote {path}: images N x 3 x {settings['image_size']}^2 -> logits N x {classes}")
    return 0
