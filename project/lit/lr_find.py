"""``python -m project lr_find``: the learning-rate range test, as its own command.

    python -m project lr_find --config configs/cnn.yaml
    python -m project lr_find --config configs/cnn.yaml --num_training 200 --max_lr 1

It trains a copy of the configured model for ``num_training`` steps while the learning rate grows
exponentially from ``min_lr`` to ``max_lr`` (Lightning's Tuner.lr_find; Leslie Smith's range
test), then prints the suggestion (the steepest fall of the smoothed loss per decade of learning
rate) and writes into the config's log folder (lightning_logs/<name>/ by default):

    lr_find.png   loss against learning rate (log scale), the suggestion marked
    lr_find.csv   the (lr, loss) pairs behind it

Why a command and not Lightning's ``LearningRateFinder`` callback added to ``fit``: on the digits
that callback stopped after 19 steps (one epoch: the search ran inside the fit's epoch limit) and
wrote ``lr=3.98e-5`` into the checkpoint while training used the OneCycle peak 0.005, so the
checkpoint recorded an LR training never used. Here the search runs on a Trainer of its own with
no epoch limit (so ``num_training`` steps always run, whatever the dataset size; only a diverging
loss stops it early, and that is said), without logger or checkpoints; the model's weights are
restored afterwards and nothing is written but the two files above. You then train with the
number you choose: ``--model.init_args.optimizer.init_args.lr X``.

With schedule onecycle (the default) ``lr`` is the peak of the cycle; the range test's suggestion
is a rate where the loss falls fastest at a constant rate, so it is a lower bound for that peak
(measured on the digits: docs/own-images.md).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import math
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import numpy as np  # noqa: E402
from lightning.pytorch.tuner import Tuner  # noqa: E402

from project.core.errors import InputError  # noqa: E402

DEFAULT_STEPS = 100
BETA = 0.98  # the loss smoothing of Lightning's range test (_LRCallback)
SKIP_BEGIN = 10  # the first points are too smoothed to show a slope (Lightning skips 10 too)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m project lr_find",
        description="Learning-rate range test. Any other argument (--config, --data.*, "
        "--model.*, --trainer.*) is read as by python -m project fit.",
    )
    parser.add_argument("--min_lr", type=float, default=1e-6)
    parser.add_argument("--max_lr", type=float, default=1.0)
    parser.add_argument("--num_training", type=int, default=DEFAULT_STEPS, help="steps to run")
    parser.add_argument(
        "--early_stop_threshold",
        type=float,
        default=4.0,
        help="stop when the smoothed loss exceeds this x its best (0: never stop early)",
    )
    parser.add_argument("--output", default=None, help="folder for lr_find.png/.csv")
    return parser


def search_trainer(config, root: str, steps: int):
    """A Trainer for the search only: the config's device and precision, no epoch limit, no
    logger, no checkpoints (Lightning's own temporary checkpoint goes to ``root``)."""
    from project.lit.cli import Trainer

    return Trainer(
        accelerator=config.accelerator,
        devices=1,
        precision=config.precision,
        max_epochs=-1,  # epochs never end the search: num_training steps do
        max_steps=steps,  # so the model's per-step LR schedule can be built (then replaced)
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=[],
    )


# Lightning's smoothing, as written in its _LRCallback (2.6): global_step is already k + 1 at the
# k-th batch's end, so the correction divides by 1 - beta^(k+2).
ONE_STEP_LATE = ("current_step = trainer.global_step", "self.beta ** (current_step + 1)")


def smoothing_is_one_step_late() -> bool:
    """Whether the installed Lightning still applies its bias correction one step late (read
    from its source): the guard on ``corrected_losses``, so a fixed release is not corrected
    twice (tests/test_lr_find.py checks the guard)."""
    from lightning.pytorch.tuner.lr_finder import _LRCallback

    source = inspect.getsource(_LRCallback.on_train_batch_end)
    return all(line in source for line in ONE_STEP_LATE)


def corrected_losses(smoothed: list[float]) -> list[float]:
    """Lightning 2.6's smoothed losses, with the bias correction it applies one step late undone
    and redone: it divides the k-th running mean by 1 - beta^(k+2) instead of 1 - beta^(k+1), so
    its first points read about half the loss and the curve seems to rise at first. Unchanged
    (and one line says so) when the installed Lightning no longer does that."""
    if not smoothing_is_one_step_late():
        print("lr_find: Lightning's loss smoothing has changed; its losses are used as they are")
        return list(smoothed)
    return [loss * (1 - BETA ** (k + 2)) / (1 - BETA ** (k + 1)) for k, loss in enumerate(smoothed)]


def suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    """(suggestion, lr of the lowest loss). The suggestion is where the loss falls fastest per
    decade of learning rate, before its minimum (fastai's "steepest" rule). Lightning's own
    ``suggestion()`` takes the slope per unit of lr: with exponentially spaced rates that favours
    the smallest rates, where a tiny change is divided by a tiny step (5.5e-5 on the digits, in a
    flat part of the curve)."""
    points = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if math.isfinite(loss)]
    if len(points) < SKIP_BEGIN + 3:
        return None, None
    lowest = min(range(len(points)), key=lambda i: points[i][1])
    window = points[SKIP_BEGIN : max(lowest, SKIP_BEGIN + 2) + 1]
    decades = np.log10([lr for lr, _ in window])
    slopes = np.gradient(np.array([loss for _, loss in window]), decades)
    return float(window[int(np.argmin(slopes))][0]), float(points[lowest][0])


def write_results(folder: Path, lrs: list[float], losses: list[float], suggestion) -> Path:
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lr_find.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["lr", "loss"])
        writer.writerows(zip(lrs, losses, strict=True))
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(lrs, losses)
    if suggestion is not None:
        axes.axvline(suggestion, color="red", linestyle="--", label=f"suggestion {suggestion:.3g}")
        axes.legend()
    axes.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
    axes.set_title("learning-rate range test (python -m project lr_find)")
    path = folder / "lr_find.png"
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def run(args: list[str] | None = None) -> dict:
    """Run the search; returns {"suggestion", "steps", "min_loss_lr", "plot"}."""
    from project.lit.cli import main
    from project.runs.folders import log_location

    options, rest = build_parser().parse_known_args(args)
    if options.num_training < 20 or not 0 < options.min_lr < options.max_lr:
        raise InputError("lr_find: needs --num_training >= 20 and 0 < --min_lr < --max_lr")
    cli = main(rest, run=False)  # the same parsing, seed and objects as python -m project fit
    with tempfile.TemporaryDirectory() as root:
        trainer = search_trainer(cli.config.trainer, root, options.num_training)
        finder = Tuner(trainer).lr_find(
            cli.model,
            datamodule=cli.datamodule,
            min_lr=options.min_lr,
            max_lr=options.max_lr,
            num_training=options.num_training,
            early_stop_threshold=options.early_stop_threshold or None,
            update_attr=False,  # never change the model: you choose the LR you train with
        )
    lrs = [float(lr) for lr in finder.results["lr"]]
    losses = corrected_losses(finder.results["loss"])
    suggestion, min_loss_lr = suggest(lrs, losses)
    folder = Path(options.output) if options.output else log_location(cli.config.trainer)[0]
    plot = write_results(folder, lrs, losses, suggestion)
    steps = len(lrs)
    print(f"lr_find: {steps} steps, lr {options.min_lr:g} -> {lrs[-1]:.3g}")
    if steps < options.num_training:
        print(f"  stopped early after {steps} of {options.num_training} steps: the loss diverged")
    print(f"  lowest smoothed loss at lr {min_loss_lr:.3g}")
    if suggestion is None:
        print("  no suggestion (too few points): raise --num_training")
    else:
        print(f"  suggested lr: {suggestion:.3g} (steepest fall of the loss)")
        print(f"  train with: --model.init_args.optimizer.init_args.lr {suggestion:.3g}")
    print(f"  plot: {plot}  (values: {plot.with_suffix('.csv')})")
    return {"suggestion": suggestion, "steps": steps, "min_loss_lr": min_loss_lr, "plot": plot}


def main(args: list[str] | None = None) -> int:
    from project.core.errors import exit_on_error

    with exit_on_error():
        run(args)
    return 0
