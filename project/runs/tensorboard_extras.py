"""What both training loops write to TensorBoard besides scalars: hyperparameters and pictures.

- Hyperparameters (model and data settings) with the run's final metrics, for TensorBoard's HPARAMS
  tab: ``hp/best_val_acc`` and ``hp/final_val_loss`` (0 at the start, the real values at the end).
- At every validation end: ``val/confusion_matrix``, ``val/predictions`` (the first images of
  every class, with the model's prediction) and ``val/top_losses`` (the most confidently wrong
  validation images: ``TopLosses``), drawn by project/runs/tensorboard_images.py. ``test`` writes
  the test split's top losses as a PNG (project/runs/test_report.py).

Loggers other than TensorBoard (CSVLogger, ...): the same figures as PNG files under
``<run>/figures/`` (``PngWriter``) and the final metrics in ``<run>/final_metrics.csv``.

The Lightning loop calls these from callbacks (project/lit/callbacks.py: HyperparametersWithMetrics,
ValidationFigures); the manual loop calls them directly. Same functions, same tags.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from project.runs.tensorboard_images import confusion_matrix_image, prediction_grid_image

if TYPE_CHECKING:  # only an annotation here; tensorboard costs 0.3 s of start-up (RunLog loads it)
    from torch.utils.tensorboard import SummaryWriter

FINAL_METRICS = ("hp/best_val_acc", "hp/final_val_loss")
GRID_IMAGES = 16  # validation images shown in val/predictions


def hyperparameters(model_hparams: dict, data_hparams: dict, model_name: str) -> dict:
    """model/* and data/* settings as TensorBoard accepts them (numbers, strings, booleans).

    An injected component ({"class_path": ..., "init_args": {...}}, e.g. the optimizer) gives
    one column for its class and one per argument (model/optimizer/lr as a number, which the
    HPARAMS tab can sort and plot), not one string holding them all."""
    flat = {"model/class": model_name}
    for prefix, values in (("model", model_hparams), ("data", data_hparams)):
        for key, value in values.items():
            if not key.startswith("_"):
                flat.update(flat_settings(f"{prefix}/{key}", value))
    return flat


def flat_settings(name: str, value) -> dict:
    if isinstance(value, dict) and "class_path" in value:
        arguments = value.get("init_args") or {}
        flat = {name: str(value["class_path"])}
        for key, argument in arguments.items():
            flat.update(flat_settings(f"{name}/{key}", argument))
        return flat
    if isinstance(value, dict):
        return {
            k: v
            for key, item in value.items()
            for k, v in flat_settings(f"{name}/{key}", item).items()
        }
    return {name: value if isinstance(value, int | float | str | bool) else str(value)}


def write_hyperparameters(writer: SummaryWriter, params: dict, metrics: dict[str, float]) -> None:
    """The HPARAMS tab's record of this run (what Lightning's TensorBoardLogger writes)."""
    from torch.utils.tensorboard.summary import hparams  # tensorboard loads when logs are written

    experiment, start, end = hparams(params, metrics)
    file_writer = writer._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    for name, value in metrics.items():
        writer.add_scalar(name, value, 0)


class PngWriter:
    """Takes ``add_image`` calls like TensorBoard's SummaryWriter and saves PNG files instead:
    ``<folder>/<tag with / as _>/step_<step>.png`` (for CSVLogger and loggers without images)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def add_image(self, tag: str, image: np.ndarray, step: int, dataformats: str = "HWC") -> None:
        folder = self.folder / tag.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(image)).save(folder / f"step_{step:07d}.png")


def write_final_metrics(folder: Path, metrics: dict[str, float]) -> Path:
    """The run's last metrics (and hp/best_val_acc, hp/final_val_loss) as name,value rows."""
    path = Path(folder) / "final_metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["metric", "value"])
        writer.writerows(sorted(metrics.items()))
    return path


class TopLosses:
    """The ``k`` most confidently wrong images seen so far (highest cross-entropy among the
    misclassified), kept on the device: each batch is one concatenation and one topk, no host
    read. ``result()`` (once, at the end) returns (images, predicted, labels, probability)."""

    def __init__(self, k: int = GRID_IMAGES):
        self.k = k
        self.kept: tuple[torch.Tensor, ...] | None = None  # scores, images, logits, labels

    def update(self, images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.detach().float()
        losses = F.cross_entropy(logits, labels, reduction="none")
        wrong = logits.argmax(dim=1) != labels
        scores = torch.where(wrong, losses, torch.full_like(losses, -math.inf))
        batch = (scores, images.detach(), logits, labels)
        if self.kept is not None:
            batch = tuple(torch.cat(pair) for pair in zip(self.kept, batch, strict=True))
        best = batch[0].topk(min(self.k, len(batch[0]))).indices
        self.kept = tuple(t[best] for t in batch)

    def result(self) -> tuple[torch.Tensor, ...] | None:
        if self.kept is None:
            return None
        scores, images, logits, labels = (t.cpu() for t in self.kept)
        wrong = torch.isfinite(scores)
        if not wrong.any():
            return None
        probabilities = logits[wrong].softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        return images[wrong], predicted, labels[wrong], confidence


def class_example_indices(labels: Sequence[int], total: int = GRID_IMAGES) -> list[int]:
    """Dataset indices of the first images of every class (total // classes each, at least 1),
    so the everyday grid shows every class, not the first batch of a class-ordered split."""
    classes = sorted(set(labels))
    each = max(1, total // max(len(classes), 1))
    taken = {c: 0 for c in classes}
    chosen = []
    for index, label in enumerate(labels):
        if taken[label] < each:
            taken[label] += 1
            chosen.append(index)
    return sorted(chosen, key=lambda i: (labels[i], i))


@torch.no_grad()
def predict_examples(
    forward: Callable[[torch.Tensor], torch.Tensor], dataset, indices: Sequence[int], device
) -> tuple[torch.Tensor, ...]:
    """(images, predicted, labels, probability) of ``dataset[indices]`` (the model in eval mode)."""
    pairs = [dataset[i] for i in indices]
    images = torch.stack([image for image, _ in pairs])
    labels = torch.tensor([int(label) for _, label in pairs])
    probabilities = forward(images.to(device)).float().softmax(dim=1).cpu()
    confidence, predicted = probabilities.max(dim=1)
    return images, predicted, labels, confidence


def top_losses_image(top, class_names, mean, std) -> np.ndarray | None:
    """The most confidently wrong images as a captioned grid (None when none was wrong)."""
    if top is None:
        return None
    images, predicted, labels, confidence = top
    return prediction_grid_image(images, predicted, labels, class_names, mean, std,
                                 probabilities=confidence)  # fmt: skip


def write_validation_figures(
    writer: SummaryWriter,
    step: int,
    counts: torch.Tensor,
    examples: tuple[torch.Tensor, ...],
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    top_losses: tuple[torch.Tensor, ...] | None = None,
) -> None:
    """``counts``: the validation confusion matrix; ``examples``: (images, predicted, labels[,
    probability]) of every class (``predict_examples``); ``top_losses``: ``TopLosses.result()``."""
    matrix = confusion_matrix_image(counts, class_names)
    writer.add_image("val/confusion_matrix", matrix, step, dataformats="HWC")
    images, predicted, labels, *probability = examples
    grid = prediction_grid_image(images, predicted, labels, class_names, mean, std,
                                 probabilities=probability[0] if probability else None)  # fmt: skip
    writer.add_image("val/predictions", grid, step, dataformats="HWC")
    worst = top_losses_image(top_losses, class_names, mean, std)
    if worst is not None:
        writer.add_image("val/top_losses", worst, step, dataformats="HWC")
