"""The test report, written by ``test`` in both loops next to the checkpoint's run:

    <run>/test_report/classification_report.csv   one row per class, then macro and weighted avg
    <run>/test_report/confusion_matrix.png         rows: true class, columns: predicted
    <run>/test_report/top_losses.png               the most confidently wrong test images

    python -m project test --config configs/cnn.yaml \
        --ckpt_path lightning_logs/cnn/version_0/checkpoints/best-epoch....ckpt
    python -m project.manual test --config configs/cnn.yaml --ckpt_path ...   (the same files)

and the same table printed (scikit-learn's ``classification_report`` layout). ``<run>`` is the
folder holding the checkpoint's ``checkpoints/`` folder. The numbers come from
project/core/metrics.py ``EvaluationMetrics``; the pictures from
project/runs/tensorboard_images.py. No Lightning import.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from project.runs.tensorboard_images import confusion_matrix_image

REPORT_FOLDER = "test_report"
COLUMNS = ("class", "precision", "recall", "f1", "support")


def report_folder(ckpt_path: str | Path | None, fallback: str | Path) -> Path:
    """``<run>/test_report`` for a checkpoint in ``<run>/checkpoints/``, else beside the file;
    ``fallback/test_report`` without a checkpoint."""
    if not ckpt_path or str(ckpt_path) in ("best", "last", "hpc", "registry"):
        return Path(fallback) / REPORT_FOLDER
    folder = Path(ckpt_path).resolve().parent
    run = folder.parent if folder.name == "checkpoints" else folder
    return run / REPORT_FOLDER


def report_rows(result: dict[str, torch.Tensor], class_names: Sequence[str]) -> list[tuple]:
    """(class, precision, recall, f1, support) per class, then "macro avg" and "weighted avg"."""
    per_class = [result[name].tolist() for name in ("precision", "recall", "f1", "support")]
    rows = [(name, *values) for name, *values in zip(class_names, *per_class, strict=True)]
    total = int(result["support"].sum())
    for average in ("macro", "weighted"):
        values = [float(result[f"{name}_{average}"]) for name in ("precision", "recall", "f1")]
        rows.append((f"{average} avg", *values, total))
    return rows


def format_table(rows: Sequence[tuple]) -> str:
    width = max(12, *(len(str(row[0])) for row in rows))
    lines = [f"{'':>{width}}  precision     recall         f1    support"]
    for name, precision, recall, f1, support in rows:
        lines.append(
            f"{name:>{width}}  {precision:9.4f}  {recall:9.4f}  {f1:9.4f}  {int(support):9d}"
        )
    return "\n".join(lines)


def write_report(
    folder: Path,
    result: dict[str, torch.Tensor],
    class_names: Sequence[str],
    top_losses: np.ndarray | None = None,
) -> Path:
    """Write the CSV and the pictures into ``folder``, print the table; returns the CSV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = report_rows(result, class_names)
    path = folder / "classification_report.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for name, *numbers, support in rows:
            writer.writerow([name, *(f"{n:.6f}" for n in numbers), int(support)])
    matrix = confusion_matrix_image(result["confusion"].cpu(), class_names)
    Image.fromarray(matrix).save(folder / "confusion_matrix.png")
    if top_losses is not None:
        Image.fromarray(top_losses).save(folder / "top_losses.png")
    print(format_table(rows))
    print(f"test report written to {folder}")
    return path
