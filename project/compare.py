"""Run the Lightning loop and the plain PyTorch loop on one config; print them side by side.

    python -m project.compare --config configs/cnn.yaml          # make compare
    python -m project.compare --config configs/cnn.yaml --trainer.max_steps 100

Each loop runs in its own process (``python -m project fit`` and ``python -m project.manual fit``,
same config, same extra options), so wall time and peak memory are measured the same way for both.
It prints final losses and accuracies, epochs, steps, time, images per second, peak memory and the
largest difference between the two final weight sets, and draws both loops' curves into
lightning_logs/compare/curves.png. Logs: lightning_logs/compare/{lightning,manual}/ (replaced on
every run), so ``make tensorboard`` overlays them too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from project.core.loss import loss_floor
from project.runs.checkpoints import load_checkpoint, network_state
from project.runs.curves import Scalars, plot_runs, read_scalars

LOOPS = {"lightning": "project", "manual": "project.manual"}


def run_loop(name: str, options: list[str], output: Path) -> dict:
    """Fit with one loop in a child process; its wall time, peak memory and log folder."""
    run_dir = output / name
    shutil.rmtree(run_dir, ignore_errors=True)
    logger = [
        f"--trainer.logger.init_args.save_dir={output.parent}",
        f"--trainer.logger.init_args.name={output.name}",
        f"--trainer.logger.init_args.version={name}",
    ]
    command = [sys.executable, "-m", LOOPS[name], "fit", *options, *logger]
    if name == "lightning":
        command.append("--trainer.enable_progress_bar=false")
    output.mkdir(parents=True, exist_ok=True)
    log_file = output / f"{name}.log"
    print(f"running the {name} loop ({log_file}) ...", flush=True)
    started = time.perf_counter()
    with open(log_file, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        # wait4 reports this child's own resource use: its peak resident memory in KiB (Linux).
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log_file.read_text().splitlines()[-15:]
        raise SystemExit(f"the {name} loop failed:\n" + "\n".join(tail))
    return {"dir": run_dir, "wall_s": seconds, "peak_mib": usage.ru_maxrss / 1024}


def summarize(run: dict, scalars: Scalars, batch_size: int) -> dict:
    last = {tag: values[-1] for tag, (steps, values) in scalars.items()}
    steps = scalars["val/acc"][0][-1] + 1  # epoch metrics are logged at the epoch's last step
    epochs = len(scalars["val/acc"][1])
    fit_seconds = sum(scalars["time/epoch_seconds"][1])
    return {
        "train/loss (last logged)": last["train/loss"],
        "train/acc (last epoch)": last["train/acc"],
        "val/loss": last["val/loss"],
        "val/acc": last["val/acc"],
        "best val/acc": max(scalars["val/acc"][1]),
        "epochs": epochs,
        "optimizer steps": steps,
        "fit time, s (epochs + validation)": fit_seconds,
        "process wall time, s (imports incl.)": run["wall_s"],
        "train images/s": steps * batch_size / fit_seconds,
        "peak memory, MiB (RSS)": run["peak_mib"],
    }


def weight_difference(lightning_dir: Path, manual_dir: Path) -> tuple[float, bool]:
    """Largest absolute difference between the two loops' last weights, and bit-identity."""
    first = network_state(load_checkpoint(lightning_dir / "checkpoints" / "last.ckpt"))
    second = network_state(load_checkpoint(manual_dir / "checkpoints" / "last.ckpt"))
    if first.keys() != second.keys():
        raise SystemExit("the two loops saved different parameter names")
    largest = max((first[k].double() - second[k].double()).abs().max().item() for k in first)
    return largest, all(torch.equal(first[k], second[k]) for k in first)


def format_table(rows: dict[str, tuple[float, float]]) -> str:
    lines = [f"{'':40s} {'Lightning':>12s} {'manual':>12s} {'ratio L/m':>10s}"]
    for label, (lightning, manual) in rows.items():
        ratio = f"{lightning / manual:10.3f}" if manual else f"{'':10s}"
        if isinstance(lightning, int):
            lines.append(f"{label:40s} {lightning:12d} {manual:12d} {ratio}")
        else:
            lines.append(f"{label:40s} {lightning:12.4f} {manual:12.4f} {ratio}")
    return "\n".join(lines)


def main(args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m project.compare", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("lightning_logs/compare"))
    own, options = parser.parse_known_args(args)
    if not any(option.startswith("--config") for option in options):
        parser.error("give at least one --config, e.g. --config configs/cnn.yaml")

    # Parsed once here with the manual loop's parser: a bad option fails before anything runs.
    from project.manual.settings import parse

    settings = parse(["fit", *options])
    batch_size = settings.data.batch_size

    runs = {name: run_loop(name, options, own.output) for name in LOOPS}
    scalars = {name: read_scalars(run["dir"]) for name, run in runs.items()}
    summaries = {name: summarize(runs[name], scalars[name], batch_size) for name in LOOPS}
    difference, identical = weight_difference(runs["lightning"]["dir"], runs["manual"]["dir"])

    rows = {
        label: (summaries["lightning"][label], summaries["manual"][label])
        for label in summaries["lightning"]
    }
    print()
    print(format_table(rows))
    print(
        f"{'max |weight difference| (last.ckpt)':40s} {difference:12.3g}"
        f"   {'bit-identical' if identical else 'not bit-identical'}"
    )
    recipe = settings.model.init_args
    if getattr(recipe, "label_smoothing", 0) > 0:  # why the losses stay far above 0
        floor = loss_floor(recipe.num_classes, recipe.label_smoothing)
        print(
            f"the losses include label smoothing {recipe.label_smoothing}: a perfect model's "
            f"loss is {floor:.3f} here, not 0 (loss_floor in project/core/loss.py)"
        )
    png = plot_runs(
        {"Lightning": scalars["lightning"], "manual": scalars["manual"]},
        own.output / "curves.png",
        title="Lightning loop (solid) against the plain PyTorch loop (dashed)",
    )
    print(f"curves: {png}")
    return {"summaries": summaries, "max_weight_difference": difference, "identical": identical}


if __name__ == "__main__":
    main()
