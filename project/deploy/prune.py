"""``python -m project prune``: a checkpoint with fewer channels (structural pruning), fine-tuned.

    python -m project prune --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt \
        --amount 0.3 --finetune_epochs 3 --output pruned.ckpt

It removes ``amount`` of the output channels of every convolution (and the matching inputs of the
layers after it), by importance: Torch-Pruning's dependency graph (DepGraph) finds which layers
must lose the same channels (a residual connection couples whole stages), and each coupled group
keeps the channels of largest L2 weight norm (``GroupMagnitudeImportance``). The classifier's
outputs are never touched. Fewer channels means smaller tensors, so the network is really smaller
and faster, unlike ``torch.nn.utils.prune``, which only zeroes weights behind a mask and brings no
speed-up (that is not offered here).

Then ``finetune_epochs`` epochs of ``fit`` (the same LightningCLI, Trainer, callbacks and logger
as ``python -m project fit``; the model's config and data are the checkpoint's, the run goes to
lightning_logs/pruned/version_<n> unless you pass other --trainer.* arguments, which like any
--model.* / --data.* argument are read as by ``fit``). The ResNet recipe trains every layer (no
frozen epochs). The best (val/acc) checkpoint of that run is written to ``--output``; with
``--finetune_epochs 0`` the pruned weights alone are (a weights-only checkpoint: test, predict and
export read it; fine-tune it by pruning with epochs instead, as ``fit --ckpt_path`` resumes only
checkpoints that hold an optimizer state).

The checkpoint records the pruned widths in its hyper_parameters (``pruning``: amount, source,
layers; project/models/pruned.py), so ``test``, ``predict``, ``export``, the manual loop and a
resumed ``fit`` rebuild the network from its class and load the weights with
``torch.load(weights_only=True)``; no module is pickled. It prints parameters, multiply-adds
(Torch-Pruning's count, one image) and test accuracy (validation accuracy where the data has no
test split) of the original, the pruned and the fine-tuned network. The file is checked (rebuilt
from the record and evaluated) before it appears under its name.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from project.core.errors import InputError, exit_on_error
from project.data.datasets import DataError
from project.data.pipeline import ImageData
from project.deploy.export import network_from_checkpoint
from project.models.backbones import find_head
from project.models.pruned import changed_widths, layer_widths
from project.models.weights import WeightsError
from project.runs.checkpoints import (
    CheckpointError,
    lightning_state_dict,
    load_checkpoint,
    save_atomic,
)

IMPORTANCE = "GroupMagnitudeImportance(p=2): L2 norm of each coupled channel group"
RUN_NAME = "pruned"  # lightning_logs/pruned/version_<n>, unless --trainer.logger... says otherwise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m project prune",
        description="Structural channel pruning (Torch-Pruning), then fine-tuning with fit. Any "
        "other argument (--model.*, --data.*, --trainer.*) is read as by python -m project fit.",
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of either loop")
    parser.add_argument(
        "--amount", type=float, required=True, help="share of each layer's channels to remove"
    )
    parser.add_argument("--finetune_epochs", type=int, default=3, help="epochs of fit afterwards")
    parser.add_argument(
        "--round_to",
        type=int,
        default=None,
        help="keep channel counts multiples of this (e.g. 8, which fast kernels prefer)",
    )
    parser.add_argument(
        "--output", default=None, help="the checkpoint to write (default: CKPT-prunedNN.ckpt)"
    )
    return parser


# ---------------------------------------------------------------------------- checks


def check_options(options) -> Path:
    """Refuse bad options before anything is computed; returns the output path."""
    if not 0 < options.amount < 1:
        raise InputError(f"--amount {options.amount}: must be between 0 and 1 (exclusive)")
    if options.finetune_epochs < 0:
        raise InputError(f"--finetune_epochs {options.finetune_epochs}: must be 0 or more")
    if options.round_to is not None and options.round_to < 1:
        raise InputError(f"--round_to {options.round_to}: must be 1 or more")
    source = Path(options.ckpt_path)
    percent = round(options.amount * 100)
    output = Path(options.output or source.with_name(f"{source.stem}-pruned{percent}.ckpt"))
    if output.is_dir():
        raise InputError(f"--output {output}: is a folder; name the checkpoint file to write")
    folder = output.parent
    while not folder.exists() and folder != folder.parent:  # save_atomic creates the rest
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise InputError(
            f"--output {output}: cannot be written ({folder} is not a writable folder)"
        )
    return output


def data_arguments(checkpoint: dict, path: str) -> dict:
    """The data settings the checkpoint was trained with (Lightning's or the manual loop's)."""
    data = checkpoint.get("datamodule_hyper_parameters")
    if data is None:  # a manual-loop checkpoint keeps its whole config
        data = (checkpoint.get("config") or {}).get("data")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: no data settings stored, cannot evaluate or fine-tune")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def scoring_data(arguments: dict, checkpoint: dict, path: str) -> tuple[ImageData, str]:
    """The checkpoint's own test split ("test"), or its validation split ("val") where the data
    has no test split (a folder with train/ and val/ only); refused if the folder now splits
    differently from when the checkpoint was trained."""
    data = ImageData(**arguments)
    try:
        data.setup("test")
        split = "test"
    except DataError:  # no test/ folder beside train/ and val/
        data.setup("validate")
        split = "val"
    recorded = (checkpoint.get("data_split") or {}).get("sha256")
    if recorded and recorded != data.split_record()["sha256"]:
        raise InputError(
            f"{path}: its data ({arguments.get('root') or 'the bundled digits'}) now splits "
            "differently from when it was trained (files added or removed): the test images "
            "would include training images"
        )
    return data, split


# ---------------------------------------------------------------------------- pruning


def prune_network(network: nn.Module, amount: float, size: int, round_to: int | None):
    """A pruned copy of ``network``: ``amount`` of every coupled channel group removed by L2
    magnitude, the classifier's outputs kept."""
    import torch_pruning as tp  # only this command needs it; loading a pruned model does not

    pruned = copy.deepcopy(network).eval()
    # DepGraph follows autograd; a frozen backbone (TransferNetwork) runs without it.
    for parameter in pruned.parameters():
        parameter.requires_grad_(True)
    try:
        head = pruned.get_submodule(find_head(pruned))
    except WeightsError as error:
        raise InputError(f"cannot prune: {error}") from None
    pruner = tp.pruner.BasePruner(
        pruned,
        torch.zeros(1, 3, size, size),
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=amount,
        ignored_layers=[head],  # the class count stays
        round_to=round_to,
    )
    pruner.step()
    return pruned


def size_of(network: nn.Module, size: int) -> tuple[int, int]:
    """(parameters, multiply-adds for one image) as Torch-Pruning counts them."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(network.eval(), torch.zeros(1, 3, size, size))
    return int(params), int(macs)


@torch.inference_mode()
def accuracy(network: nn.Module, data: ImageData, split: str) -> float:
    network.eval()
    correct = seen = 0
    loader = data.test_dataloader() if split == "test" else data.val_dataloader()
    for images, labels in loader:
        correct += (network(images).argmax(dim=1) == labels).sum().item()
        seen += len(labels)
    return correct / max(seen, 1)


# ---------------------------------------------------------------------------- fine-tuning


def finetune(model: dict, data: dict, state: dict, epochs: int, fit_args: list[str]) -> Path:
    """``epochs`` of fit from the pruned weights; the run's best checkpoint (val/acc)."""
    from project.lit.cli import main
    from project.runs.checkpoints import fill_network

    args = [
        f"--model={json.dumps(model)}",
        f"--data={json.dumps(data)}",
        f"--trainer.max_epochs={epochs}",
        f"--trainer.logger.init_args.name={RUN_NAME}",
        *fit_args,  # the user's, last: they win
    ]
    # run=False: LightningCLI builds the model, data and Trainer exactly as for `fit`, and the
    # pruned weights go in before Trainer.fit (the call the fit subcommand makes).
    argv, sys.argv = sys.argv, sys.argv[:1]  # else LightningCLI warns that both are given
    try:
        cli = main(args, run=False)
    finally:
        sys.argv = argv
    fill_network(cli.model.network, state, "the pruned network")  # widths built from the record
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    callback = cli.trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None else ""
    if not best:
        raise InputError("fine-tuning wrote no checkpoint (no checkpoint callback configured?)")
    print(f"fine-tuning run: {cli.trainer.log_dir}")
    return Path(best)


def publish(checkpoint: dict, output: Path):
    """Write ``checkpoint`` to a temporary file, rebuild its network from the record as test and
    export will, and only then rename it to ``output``; returns the rebuilt network."""
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        save_atomic(checkpoint, temporary)
        network, _ = network_from_checkpoint(temporary)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return network


# ---------------------------------------------------------------------------- the command


def report(name: str, params: int, macs: int, accuracy: float, base: tuple[int, int]) -> str:
    ratios = f"  ({params / base[0]:.2f}x params, {macs / base[1]:.2f}x MACs)" if base else ""
    return f"{name:<12}{params:>14,}{macs / 1e6:>12.2f}{accuracy:>11.2%}{ratios}"


def run(options, fit_args: list[str]) -> None:
    output = check_options(options)
    path = options.ckpt_path
    network, settings = network_from_checkpoint(path)  # weights_only; only project classes
    checkpoint = load_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    arguments = data_arguments(checkpoint, path)
    data, split = scoring_data(arguments, checkpoint, path)
    size = settings["image_size"]

    pruned = prune_network(network, options.amount, size, options.round_to)
    before, after = layer_widths(network), layer_widths(pruned)
    old = hparams.get("pruning") or {}
    record = {
        "amount": options.amount,
        "source": str(path),
        "importance": IMPORTANCE,
        "layers": {**(old.get("layers") or {}), **changed_widths(before, after)},
    }
    hparams["pruning"] = record
    base = size_of(network, size)
    if split == "val":
        print(f"no test split in {arguments.get('root')}: accuracy on the validation split")
    print(f"{'':<12}{'parameters':>14}{'MMACs':>12}{split + ' acc':>11}")
    print(report("original", *base, accuracy(network, data, split), ()))
    print(report("pruned", *size_of(pruned, size), accuracy(pruned, data, split), base))

    if options.finetune_epochs == 0:
        result = {
            "epoch": 0,
            "global_step": 0,
            "pytorch-lightning_version": checkpoint.get("pytorch-lightning_version", "2.6.0"),
            "state_dict": lightning_state_dict(pruned.state_dict()),
            "hparams_name": "kwargs",
            "hyper_parameters": hparams,
            "datamodule_hyper_parameters": arguments,
            "inference": checkpoint["inference"],
            "data_split": checkpoint.get("data_split"),
        }
    else:
        class_path = hparams.get("_class_path")
        init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
        if "freeze_backbone_epochs" in init_args:  # ResNet recipe: every layer fine-tunes
            init_args["freeze_backbone_epochs"] = 0
        model = {"class_path": class_path, "init_args": init_args}
        best = finetune(model, arguments, pruned.state_dict(), options.finetune_epochs, fit_args)
        result = load_checkpoint(best)
    rebuilt = publish(result, output)
    if options.finetune_epochs:
        score = accuracy(rebuilt, data, split)
        print(report("fine-tuned", *size_of(rebuilt, size), score, base))
    print(f"wrote {output}")


def split_arguments(parser: argparse.ArgumentParser, args: list[str]) -> tuple[list, list]:
    """(this command's options, the rest for fit): ``--name value`` or ``--name=value``."""
    own_names = {name for action in parser._actions for name in action.option_strings}
    own, rest, index = [], [], 0
    while index < len(args):
        name = args[index].split("=", 1)[0]
        target = own if name in own_names else rest
        takes_value = "=" not in args[index] and index + 1 < len(args)
        takes_value = takes_value and not args[index + 1].startswith("--")
        target.extend(args[index : index + 1 + takes_value])
        index += 1 + takes_value
    return own, rest


def main(args: list[str] | None = None) -> int:
    parser = build_parser()
    own, fit_args = split_arguments(parser, sys.argv[1:] if args is None else list(args))
    options = parser.parse_args(own)  # strict: a mistyped option of prune's own is an error
    with exit_on_error():  # bad input: one line, exit status 2 (project/core/errors.py)
        run(options, fit_args)
    return 0
