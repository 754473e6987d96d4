"""Offline proof that transfer learning works (``make transfer``), on the bundled digits.

    python -m project.transfer_demo [--trainer.max_epochs N ...]   # extra options go to every run

1. source: ResNet18 from random weights on digits 0-4 (configs/transfer/source.yaml);
2. target, digits 5-9 (configs/transfer/target.yaml), three ways:
   a. the source's backbone, frozen: only the new head learns;
   b. a random backbone, frozen: the same, without transferred features (the control);
   c. the source's backbone, fine-tuned: head only for 1 epoch, then everything with
      backbone lr = 0.1 x head lr.
Prints the best validation accuracy of each target run. ImageNet weights cannot be downloaded on
every machine, so the "pretrained" backbone here is one we train ourselves, seconds before.
"""

from __future__ import annotations

import sys
import time

from project.cli import main

BASE = ["--config", "configs/resnet18.yaml"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def fit(args: list[str]) -> tuple[float, str, float]:
    """(best val/acc, best checkpoint, seconds) of one fit."""
    start = time.perf_counter()
    cli = main(["fit", *BASE, *args, *QUIET])
    callback = cli.trainer.checkpoint_callback
    return callback.best_model_score.item(), callback.best_model_path, time.perf_counter() - start


def run(extra: list[str]) -> dict[str, float]:
    source_acc, source_ckpt, source_s = fit(["--config", "configs/transfer/source.yaml", *extra])
    target = ["--config", "configs/transfer/target.yaml", *extra]
    runs = {
        "transferred backbone, frozen": [f"--model.init_args.weights={source_ckpt}"],
        "random backbone, frozen": ["--model.init_args.weights=null"],
        "transferred backbone, fine-tuned (differential LRs)": [
            f"--model.init_args.weights={source_ckpt}",
            "--model.init_args.freeze_backbone_epochs=1",
            "--model.init_args.lr=0.003",
        ],
    }
    results = {}
    timings = {}
    for name, args in runs.items():
        results[name], _, timings[name] = fit([*target, *args])
    print(f"\nsource (digits 0-4, from scratch): val/acc {source_acc:.4f} in {source_s:.0f} s")
    print(f"checkpoint used as weights: {source_ckpt}\n")
    print(f"{'target run (digits 5-9)':<55} {'best val/acc':>12} {'time':>7}")
    for name, accuracy in results.items():
        print(f"{name:<55} {accuracy:>12.4f} {timings[name]:>6.0f}s")
    return results


if __name__ == "__main__":
    run(sys.argv[1:])
