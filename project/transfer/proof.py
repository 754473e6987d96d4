"""``make transfer``: does a pretrained backbone help? Five ways to learn digits from 20 examples.

    python -m project.transfer [--seeds 3] [--k 20]

Offline and deterministic (project/transfer/glyphs.py): the source backbone learned the 52 Latin
letters in 16 fonts (project/transfer/source.py); the target is the digits 0-9 in 6 other fonts,
k labelled images per digit, scored on 1,200 more. Every row is a real ``python -m project fit``
(configs/resnet18.yaml + configs/transfer/target.yaml) except the pixels baseline:

    frozen, pretrained       source backbone frozen, a new linear head (features cached)
    frozen, random           the same with a random backbone: what the architecture alone gives
    pixels                   a linear classifier on the raw pixels
    pretrained, head first   the challenge recipe: head alone for 5 epochs, then everything
      then all, backbone/100 with the backbone at a hundredth of the head's learning rate
                             (at a tenth, 200 labelled images pull the features apart: 0.65)
    fine-tuned from random   every layer from the first step, no pretraining

Each row runs with seeds 0..n-1; a seed draws both the k labelled images and the training
randomness. Printed: mean, standard deviation, min-max and each seed's final val/acc.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from project.transfer.glyphs import GLYPHS_ROOT, few_shot_split
from project.transfer.source import CONFIGS, QUIET, prepare

BASE = [
    *("--config", str(CONFIGS / "resnet18.yaml")),
    *("--config", str(CONFIGS / "transfer" / "target.yaml")),
]


def rows(weights: Path) -> dict[str, list[str]]:
    """Each row's options on top of configs/transfer/target.yaml (frozen source backbone)."""
    recipe = [
        f"--model.init_args.weights={weights}",
        "--model.init_args.freeze_backbone_epochs=5",
        "--model.init_args.backbone_lr_ratio=0.01",
        "--model.init_args.cache_features=false",
    ]
    return {
        "frozen, pretrained": [f"--model.init_args.weights={weights}"],
        "frozen, random": ["--model.init_args.weights=null"],
        "pixels (linear)": [],
        "pretrained, head first, then all (backbone lr/100)": recipe,
        "fine-tuned from random": [
            "--model.init_args.weights=null",
            "--model.init_args.freeze_backbone_epochs=0",
            "--model.init_args.cache_features=false",
        ],
    }


def fit_accuracy(split: Path, seed: int, options: list[str]) -> float:
    """Final val/acc of one ``python -m project fit`` run on ``split``."""
    from project.lit.cli import main

    run = [f"--data.root={split}", f"--seed_everything={seed}", *options, *QUIET]
    cli = main(["fit", *BASE, *run])
    return cli.trainer.callback_metrics["val/acc"].item()


def pixels_accuracy(split: Path, seed: int) -> float:
    """A linear classifier on the normalized pixels, through the project's DataModule."""
    from project.lit.datamodule import ImageDataModule

    torch.manual_seed(seed)
    data = ImageDataModule(
        root=str(split), image_size=32, augmentation="none", mean=[0.084] * 3, std=[0.194] * 3,
        batch_size=2048, num_workers=0, cache_images=False,
    )  # fmt: skip
    data.setup("fit")
    (x, y), (xv, yv) = (next(iter(data.train_dataloader())), next(iter(data.val_dataloader())))
    head = torch.nn.Linear(x[0].numel(), data.num_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    for _ in range(300):  # full batch: 10 x k images
        loss = F.cross_entropy(head(x.flatten(1)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (head(xv.flatten(1)).argmax(1) == yv).float().mean().item()


def run(seeds: int, k: int, root: Path = GLYPHS_ROOT) -> dict[str, list[float]]:
    started = time.perf_counter()
    weights = prepare(root)
    results: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for name, options in rows(weights).items():
        row_started = time.perf_counter()
        results[name] = []
        for seed in range(seeds):
            split = few_shot_split(root, k, seed)
            if name.startswith("pixels"):
                results[name].append(pixels_accuracy(split, seed))
            else:
                results[name].append(fit_accuracy(split, seed, options))
        seconds[name] = time.perf_counter() - row_started
    print_table(results, seconds, k, time.perf_counter() - started)
    return results


def print_table(results: dict[str, list[float]], seconds: dict[str, float], k: int, total: float):
    print(f"\ndigits 0-9 in 6 unseen fonts, {k} labelled images per digit, val/acc on 1,200 images")
    print(f"{'target run':<52} {'mean':>6} {'std':>6} {'min-max':>13}  per seed        time")
    for name, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        each = " ".join(f"{v:.3f}" for v in values)
        print(
            f"{name:<52} {statistics.mean(values):>6.3f} {spread:>6.3f} "
            f"{min(values):>6.3f}-{max(values):.3f}  {each}  {seconds[name]:>4.0f} s"
        )
    print(f"whole run (including any data and source preparation): {total:.0f} s")


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m project.transfer", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    parser.add_argument("--k", type=int, default=20, help="labelled images per digit (20)")
    options = parser.parse_args(args)
    run(options.seeds, options.k)


if __name__ == "__main__":
    main()
