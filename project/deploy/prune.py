"""``python -m project prune``: a checkpoint with fewer channels (structural pruning), fine-tuned.

    python -m project prune --ckpt_path lightning_logs/cnn/version_0/checkpoints/last.ckpt \
        --amount 0.3 --finetune_epochs 3 --output pruned.ckpt
    python -m project prune --ckpt_path CKPT --amount 0.3 --finetune_epochs 30 \
        --data.augmentation digits --trainer.precision 32-true   # glyph target: docs/deploy.md

It removes ``amount`` of the output channels of every convolution (and the matching inputs of the
layers after it), by importance: Torch-Pruning's dependency graph (DepGraph) finds which layers
must lose the same channels (a residual connection couples whole stages), and each coupled group
keeps the channels of largest L2 weight norm (``GroupMagnitudeImportance``). The classifier's
outputs are never touched. Fewer channels means smaller tensors, so the network is really smaller
and faster, unlike ``torch.nn.utils.prune``, which only zeroes weights behind a mask and brings no
speed-up (that is not offered here). Where the training images are at hand, every BatchNorm's
statistics are then re-estimated on them (the "+ BN stats" row): the layers after a pruned one
see other inputs than the statistics describe.

Then ``finetune_epochs`` epochs of ``fit`` (the same LightningCLI, Trainer, callbacks and logger
as ``python -m project fit``; the model's config and data are the checkpoint's, the run goes to
lightning_logs/pruned/version_<n> unless you pass other --trainer.* arguments, which like any
--model.* / --data.* argument are read as by ``fit``). The ResNet recipe trains every layer (no
frozen epochs, no feature cache), so augmentation that a frozen backbone's feature cache ruled out
can come back (``--data.augmentation``). ``--distill S`` makes each training target S x the
unpruned network's softmax at ``--temperature`` and 1 - S x the label (knowledge distillation;
off by default: on the glyph target the labels with augmentation kept more accuracy). The best
(val/acc) epoch of that run is written to ``--output`` as a weights-only checkpoint (no optimizer,
scheduler or loop state: smaller than the original); the run's own checkpoints resume the
fine-tuning (``fit --ckpt_path RUN/checkpoints/last.ckpt``, without distillation). With
``--finetune_epochs 0`` the pruned weights alone are written, and the training images are not
needed: the accuracies are then those of the validation images the checkpoint stores, where the
data is not at its recorded path (project/deploy/checkpoint_data.py).

The checkpoint records the pruned widths in its hyper_parameters (``pruning``: amount, source,
layers; project/models/pruned.py), so ``test``, ``predict``, ``export``, the manual loop and a
resumed ``fit`` rebuild the network from its class and load the weights with
``torch.load(weights_only=True)``; no module is pickled. It prints parameters, multiply-adds
(Torch-Pruning's count, one image) and accuracy (on the test split, else the validation split,
else the stored validation images; one line says which) of the original, the pruned and the
fine-tuned network, and the latency of a batch of ``--speed_batch`` images of the original and
the pruned network (PyTorch eager fp32, ``--speed_rounds`` interleaved rounds, threads and load
average printed). The file is checked (rebuilt from the record and evaluated) before it appears
under its name.
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
from project.deploy.checkpoint_data import (
    Images,
    available_data,
    evaluation_images,
    split_tensors,
)
from project.deploy.export import network_from_checkpoint
from project.deploy.files import check_writable
from project.deploy.speed import conditions, interleaved_seconds, latency_line
from project.models.backbones import find_head
from project.models.pruned import changed_widths, layer_widths
from project.models.weights import WeightsError
from project.runs.checkpoints import (
    CheckpointError,
    lightning_state_dict,
    load_checkpoint,
    network_state,
    save_atomic,
)

IMPORTANCE = "GroupMagnitudeImportance(p=2): L2 norm of each coupled channel group"
DISTILL = 0.0  # --distill: the teacher's share of each fine-tuning target (0: labels only)
TEMPERATURE = 4.0  # --temperature
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
    parser.add_argument(
        "--distill",
        type=float,
        default=DISTILL,
        help="knowledge distillation while fine-tuning: each training target is this share the "
        "unpruned network's softened prediction and the rest the label (0: labels only)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=TEMPERATURE,
        help="softmax temperature of the unpruned network's predictions (--distill)",
    )
    parser.add_argument(
        "--speed_batch", type=int, default=64, help="batch size of the latency measurement"
    )
    parser.add_argument(
        "--speed_rounds",
        type=int,
        default=5,
        help="interleaved rounds of the latency measurement (0: no measurement)",
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
    if not 0 <= options.distill <= 1:
        raise InputError(f"--distill {options.distill}: must be between 0 and 1")
    if options.temperature <= 0:
        raise InputError(f"--temperature {options.temperature}: must be above 0")
    if options.speed_batch < 1 or options.speed_rounds < 0:
        raise InputError("--speed_batch: at least 1; --speed_rounds: 0 or more")
    source = Path(options.ckpt_path)
    percent = round(options.amount * 100)
    output = Path(options.output or source.with_name(f"{source.stem}-pruned{percent}.ckpt"))
    return check_writable(output)  # a folder, a file where a folder should be, no permission


def data_arguments(checkpoint: dict, path: str) -> dict:
    """The data settings the checkpoint was trained with (Lightning's or the manual loop's)."""
    data = checkpoint.get("datamodule_hyper_parameters")
    if data is None:  # a manual-loop checkpoint keeps its whole config
        data = (checkpoint.get("config") or {}).get("data")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: no data settings stored, cannot evaluate or fine-tune")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def training_images(checkpoint: dict, path: str, limit: int = 1024) -> torch.Tensor | None:
    """Up to ``limit`` training images with the evaluation transform (None without the data)."""
    data, _ = available_data(checkpoint, path)
    if data is None:
        return None
    available = len(data._labeled("train"))
    return split_tensors(data, "train", min(limit, available))[0]


def scoring_images(checkpoint: dict, path: str, finetune_epochs: int) -> Images:
    """The checkpoint's own test split, else its validation split (a folder with train/ and
    val/ only), else (the data not at its recorded path) the validation images the checkpoint
    stores; refused if the folder now splits differently from when the checkpoint was trained,
    or if fine-tuning is asked for and the training images are not there."""
    data, missing = available_data(checkpoint, path)
    if data is None and finetune_epochs:
        raise InputError(
            f"{path}: {missing}; fine-tuning trains on those images (give their folder with "
            "--data.root), or prune without it: --finetune_epochs 0"
        )
    recorded = (checkpoint.get("data_split") or {}).get("sha256")
    if data is not None and recorded and recorded != data.split_record()["sha256"]:
        raise InputError(
            f"{path}: its data ({data.root or 'the bundled digits'}) now splits "
            "differently from when it was trained (files added or removed): the test images "
            "would include training images"
        )
    return evaluation_images(checkpoint, path, "auto")


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


@torch.no_grad()
def recalibrate_batchnorm(network: nn.Module, images: torch.Tensor, batch_size: int = 64) -> None:
    """Re-estimate every BatchNorm's running mean and variance on ``images`` (training mode, no
    gradient, a plain average over the batches): removing channels changes what each later
    layer sees, and the statistics measured before no longer describe it."""
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average
    network.train()
    for start in range(0, len(images), batch_size):
        network(images[start : start + batch_size])
    network.eval()
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def size_of(network: nn.Module, size: int) -> tuple[int, int]:
    """(parameters, multiply-adds for one image) as Torch-Pruning counts them."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(network.eval(), torch.zeros(1, 3, size, size))
    return int(params), int(macs)


@torch.inference_mode()
def accuracy(network: nn.Module, scoring: Images, batch_size: int = 256) -> float:
    network.eval()
    correct = 0
    for start in range(0, len(scoring.images), batch_size):
        logits = network(scoring.images[start : start + batch_size])
        correct += (logits.argmax(dim=1) == scoring.labels[start : start + batch_size]).sum()
    return int(correct) / max(len(scoring.images), 1)


def latency(networks: dict[str, nn.Module], size: int, options) -> list[str]:
    """Each network's time for one batch (fp32, eval, inference_mode), interleaved."""
    if options.speed_rounds == 0:
        return []
    batch = torch.randn(options.speed_batch, 3, size, size, generator=torch.Generator())

    def runner(network):
        def run(images):
            with torch.inference_mode():
                return network.eval()(images)

        return run

    candidates = {name: runner(network) for name, network in networks.items()}
    seconds = interleaved_seconds(candidates, batch, options.speed_rounds, calls=2)
    return [
        f"speed ({conditions(options.speed_batch, options.speed_rounds)}, PyTorch eager fp32):",
        "  " + latency_line(seconds, "original"),
    ]


# ---------------------------------------------------------------------------- distillation


class Distillation:
    """Soft targets from the unpruned network (Hinton et al., 2015): each training batch's
    target becomes ``share`` x softmax(teacher logits / temperature) + (1 - share) x the label
    (one-hot, or MixUp/CutMix's mix), and the recipe's cross-entropy takes it as it takes a
    MixUp target. Wraps the recipe's ``mix`` (what both loops call before the forward pass)."""

    def __init__(self, teacher: nn.Module, share: float, temperature: float, mix):
        self.teacher = teacher
        self.share, self.temperature, self.mix = share, temperature, mix

    def __call__(self, images: torch.Tensor, labels: torch.Tensor):
        images, targets = self.mix(images, labels)
        self.teacher.to(images.device)
        with torch.no_grad():
            soft = (self.teacher(images).float() / self.temperature).softmax(dim=1)
        if targets.ndim == 1:
            targets = torch.nn.functional.one_hot(targets, soft.shape[1]).float()
        return images, self.share * soft + (1 - self.share) * targets


# ---------------------------------------------------------------------------- fine-tuning


def finetune(
    model: dict, data: dict, state: dict, epochs: int, fit_args: list[str], distill=None
) -> tuple[Path, Path]:
    """``epochs`` of fit from the pruned weights (``distill``: a function of the recipe's
    ``mix`` that replaces it, e.g. ``Distillation``); the run's best checkpoint (val/acc) and
    its folder."""
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
    if distill is not None:
        cli.model.recipe.mix = distill(cli.model.recipe.mix)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    callback = cli.trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None else ""
    if not best:
        raise InputError("fine-tuning wrote no checkpoint (no checkpoint callback configured?)")
    return Path(best), Path(cli.trainer.log_dir)


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


def weights_only_checkpoint(source: dict, state: dict, hparams: dict, arguments: dict) -> dict:
    """What ``--output`` holds: the network's weights and what rebuilds and describes it (class,
    pruning record, data settings, inference settings and stored images), no optimizer, scheduler
    or loop state (those stay in the fine-tuning run's own checkpoints, to resume it)."""
    return {
        "epoch": source.get("epoch", 0),
        "global_step": source.get("global_step", 0),
        "pytorch-lightning_version": source.get("pytorch-lightning_version", "2.6.0"),
        "state_dict": lightning_state_dict(state),
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
        "datamodule_hyper_parameters": arguments,
        "inference": source["inference"],
        "data_split": source.get("data_split"),
    }


def finetune_model(hparams: dict) -> dict:
    """The model section of the fine-tuning run: the checkpoint's, every layer trainable."""
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    if "freeze_backbone_epochs" in init_args:  # ResNet recipe: every layer fine-tunes
        init_args["freeze_backbone_epochs"] = 0
    if init_args.get("cache_features"):  # a trained backbone's features change every step
        init_args["cache_features"] = False
    return {"class_path": hparams.get("_class_path"), "init_args": init_args}


def run(options, fit_args: list[str]) -> None:
    output = check_options(options)
    path = options.ckpt_path
    checkpoint = load_checkpoint(path)
    network, settings = network_from_checkpoint(path, checkpoint=checkpoint)  # weights_only
    hparams = dict(checkpoint["hyper_parameters"])
    arguments = data_arguments(checkpoint, path)
    scoring = scoring_images(checkpoint, path, options.finetune_epochs)
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
    print(f"accuracy on {scoring.description}")
    print(f"{'':<12}{'parameters':>14}{'MMACs':>12}{'accuracy':>11}")
    print(report("original", *base, accuracy(network, scoring), ()))
    print(report("pruned", *size_of(pruned, size), accuracy(pruned, scoring), base))
    training = training_images(checkpoint, path)
    if training is not None:  # the cheapest repair: statistics that match the pruned layers
        recalibrate_batchnorm(pruned, training)
        print(report("+ BN stats", *size_of(pruned, size), accuracy(pruned, scoring), base))

    state, source = pruned.state_dict(), checkpoint
    if options.finetune_epochs:
        distill = None
        if options.distill > 0:
            print(f"fine-tuning with distillation: {options.distill} x the unpruned network's "
                  f"softmax at temperature {options.temperature} + {1 - options.distill:g} x "
                  "the label")  # fmt: skip
            teacher = copy.deepcopy(network).eval()

            def distill(mix):
                return Distillation(teacher, options.distill, options.temperature, mix)

        best, run_folder = finetune(finetune_model(hparams), arguments, state,
                                    options.finetune_epochs, fit_args, distill)  # fmt: skip
        source = load_checkpoint(best)
        state = network_state(source, best)
        print(f"fine-tuning run: {run_folder} (its best: {best.name}); continue it with fit "
              f"--ckpt_path {run_folder / 'checkpoints' / 'last.ckpt'}")  # fmt: skip
    result = weights_only_checkpoint(source, state, hparams, arguments)
    rebuilt = publish(result, output)
    if options.finetune_epochs:
        score = accuracy(rebuilt, scoring)
        print(report("fine-tuned", *size_of(rebuilt, size), score, base))
    for line in latency({"original": network, "pruned": rebuilt}, size, options):
        print(line)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, weights only; "
          f"{Path(path).name}: {Path(path).stat().st_size / 1e6:.1f} MB)")  # fmt: skip


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
