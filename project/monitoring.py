"""What both training loops write to TensorBoard besides scalars: hyperparameters and pictures.

- Hyperparameters (model and data settings) with the run's final metrics, for TensorBoard's HPARAMS
  tab: ``hp/best_val_acc`` and ``hp/final_val_loss`` (0 at the start, the real values at the end).
- At every validation end: ``val/confusion_matrix`` and ``val/predictions`` (project/figures.py).

The Lightning loop calls these from callbacks (project/callbacks.py: HyperparametersWithMetrics,
ValidationFigures); the manual loop calls them directly. Same functions, same tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from project.figures import confusion_matrix_image, prediction_grid_image

FINAL_METRICS = ("hp/best_val_acc", "hp/final_val_loss")
GRID_IMAGES = 16  # validation images shown in val/predictions


def hyperparameters(model_hparams: dict, data_hparams: dict, model_class: type) -> dict:
    """model/* and data/* settings as TensorBoard accepts them (numbers, strings, booleans)."""
    flat = {"model/class": model_class.__name__}
    for prefix, values in (("model", model_hparams), ("data", data_hparams)):
        for key, value in values.items():
            if key.startswith("_"):
                continue
            plain = value if isinstance(value, int | float | str | bool) else str(value)
            flat[f"{prefix}/{key}"] = plain
    return flat


def write_hyperparameters(writer: SummaryWriter, params: dict, metrics: dict[str, float]) -> None:
    """The HPARAMS tab's record of this run (what Lightning's TensorBoardLogger writes)."""
    experiment, start, end = hparams(params, metrics)
    file_writer = writer._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    for name, value in metrics.items():
        writer.add_scalar(name, value, 0)


def write_validation_figures(
    writer: SummaryWriter,
    step: int,
    counts: torch.Tensor,
    first_batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
) -> None:
    """``counts``: the validation confusion matrix; ``first_batch``: (images, predicted, labels)."""
    matrix = confusion_matrix_image(counts, class_names)
    writer.add_image("val/confusion_matrix", matrix, step, dataformats="HWC")
    images, predicted, labels = (t[:GRID_IMAGES] for t in first_batch)
    grid = prediction_grid_image(images, predicted, labels, class_names, mean, std)
    writer.add_image("val/predictions", grid, step, dataformats="HWC")
