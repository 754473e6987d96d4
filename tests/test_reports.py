"""The test report (project/runs/test_report.py) and per-class metrics in both loops: ``test``
writes the
classification report (CSV + printed table) and the confusion-matrix PNG next to the checkpoint's
run, the same numbers from either loop; val/f1_macro can choose the best checkpoint in both."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from project.lit.cli import main as lightning_main
from project.manual.cli import run as manual_run
from project.runs.tensorboard_extras import TopLosses, class_example_indices
from project.runs.tensorboard_images import TILE, prediction_grid_image
from project.runs.test_report import format_table, report_folder, write_report

from .helpers import CNN_CONFIG, assert_same_predictions, make_class_folders


def read_csv(path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


TWO_CLASSES = {
    "precision": torch.tensor([1.0, 0.5]),
    "recall": torch.tensor([0.5, 1.0]),
    "f1": torch.tensor([2 / 3, 2 / 3]),
    "support": torch.tensor([2, 1]),
    "confusion": torch.tensor([[1, 1], [0, 1]]),
    "precision_macro": torch.tensor(0.75),
    "recall_macro": torch.tensor(0.75),
    "f1_macro": torch.tensor(2 / 3),
    "precision_weighted": torch.tensor(2.5 / 3),
    "recall_weighted": torch.tensor(2 / 3),
    "f1_weighted": torch.tensor(2 / 3),
}


def test_the_report_has_a_row_per_class_then_the_averages(tmp_path, capsys):
    path = write_report(tmp_path / "report", TWO_CLASSES, ["cat", "dog"])
    rows = read_csv(path)
    assert rows[0] == ["class", "precision", "recall", "f1", "support"]
    assert [row[0] for row in rows[1:]] == ["cat", "dog", "macro avg", "weighted avg"]
    assert rows[3][1:] == ["0.750000", "0.750000", "0.666667", "3"]
    with Image.open(tmp_path / "report" / "confusion_matrix.png") as image:
        assert image.width > 50
    printed = capsys.readouterr().out
    assert "macro avg" in printed and "weighted avg" in printed


def test_the_report_goes_to_the_run_of_the_checkpoint(tmp_path):
    checkpoint = tmp_path / "cnn" / "version_3" / "checkpoints" / "best.ckpt"
    assert report_folder(checkpoint, "elsewhere") == (checkpoint.parents[1] / "test_report")
    assert report_folder(None, tmp_path) == tmp_path / "test_report"
    # A file outside a checkpoints/ folder: the report goes beside it.
    loose = tmp_path / "downloads" / "model.ckpt"
    assert report_folder(loose, "elsewhere") == tmp_path / "downloads" / "test_report"
    # Lightning's names for a checkpoint it finds itself: no file to put the report beside.
    for name in ("best", "last", "hpc", "registry"):
        assert report_folder(name, tmp_path) == tmp_path / "test_report", name


def test_the_report_files_and_table_are_exactly_as_documented(tmp_path, capsys):
    folder = tmp_path / "run" / "test_report"  # its parent does not exist yet
    worst = np.zeros((20, 30, 3), dtype=np.uint8)
    path = write_report(folder, TWO_CLASSES, ["cat", "dog"], worst)
    assert path == folder / "classification_report.csv"
    assert path.read_bytes().startswith(b"class,precision,recall,f1,support\r\n")  # csv dialect
    with Image.open(folder / "top_losses.png") as image:
        assert image.size == (30, 20)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == " " * 12 + "  precision     recall         f1    support"
    assert printed[1] == "         cat     1.0000     0.5000     0.6667          2"
    assert printed[-1] == f"test report written to {folder}"
    write_report(folder, TWO_CLASSES, ["cat", "dog"])  # again into the same folder: overwritten
    with pytest.raises(ValueError):  # a class name list that does not match the numbers
        write_report(tmp_path / "other", TWO_CLASSES, ["cat", "dog", "bird"])


PREDICT_TOP3 = """
trainer:
  callbacks:
    - class_path: project.lit.callbacks.PredictionWriter
      init_args:
        output_file: {output}
        top_k: 3
"""

F1_MONITOR = """
trainer:
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        monitor: val/f1_macro
        mode: max
        filename: "best-f1{val/f1_macro:.4f}"
        auto_insert_metric_name: false
"""


def test_the_table_keeps_its_columns_aligned_for_short_and_long_class_names():
    """The name column is at least 12 wide (the header's layout), wider for a longer name."""
    short = format_table([("a", 0.5, 0.25, 1.0, 3)]).splitlines()
    assert short[1] == f"{'a':>12}     0.5000     0.2500     1.0000          3"
    assert len(short[0]) == len(short[1])  # the header lines up with the numbers
    long = format_table([("a_long_class_name", 1.0, 1.0, 1.0, 1)]).splitlines()
    assert long[1].startswith("a_long_class_name  ") and len(long[0]) == len(long[1])


def test_both_loops_choose_by_f1_and_write_the_same_test_report(tmp_path):
    images = make_class_folders(tmp_path / "images", {"a": 16, "b": 16, "c": 16}, size=(8, 8))
    monitor = tmp_path / "f1.yaml"
    monitor.write_text(F1_MONITOR)
    args = [
        "--config", CNN_CONFIG, "--config", str(monitor), f"--data.root={images}",
        "--data.image_size=8", "--data.augmentation=none", "--model.init_args.widths=[8]",
        "--trainer.max_epochs=1", "--trainer.precision=32-true", "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
    ]  # fmt: skip
    cli = lightning_main(["fit", *args])
    best = cli.trainer.checkpoint_callback.best_model_path
    assert "best-f1" in best
    manual = manual_run(["fit", *args])
    assert manual.best_checkpoint.name.startswith("best-f1")
    f1 = manual.history.epochs[-1]["val/f1_macro"]
    assert f1 == pytest.approx(float(cli.trainer.callback_metrics["val/f1_macro"]), abs=1e-6)

    # Each loop tests the same weights from a run folder of its own, so each report lands beside
    # its own copy of the checkpoint and the comparison reads two reports, not one twice.
    copy = tmp_path / "manual_copy" / "version_0" / "checkpoints" / Path(best).name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(best, copy)
    lightning_main(["test", *args, f"--ckpt_path={best}"])
    report = tmp_path / "logs" / "cnn" / "version_0" / "test_report"
    from_lightning = read_csv(report / "classification_report.csv")
    assert (report / "confusion_matrix.png").is_file()
    lightning_worst = (report / "top_losses.png").read_bytes()  # random images: some are wrong
    metrics = manual_run(["test", *args, f"--ckpt_path={copy}"])
    manual_report = copy.parents[1] / "test_report"
    assert read_csv(manual_report / "classification_report.csv") == from_lightning  # same numbers
    assert metrics["test/f1_macro"] == pytest.approx(float(from_lightning[-2][3]), abs=1e-6)
    assert (manual_report / "confusion_matrix.png").is_file()
    assert (manual_report / "top_losses.png").read_bytes() == lightning_worst  # the same images

    # predict: the 3 most probable classes of every image, with their probabilities
    writer = tmp_path / "top3.yaml"
    writer.write_text(PREDICT_TOP3.format(output=tmp_path / "predictions.csv"))
    lightning_main(["predict", *args, "--config", str(writer), f"--data.predict_root={images}",
                    f"--ckpt_path={best}"])  # fmt: skip
    rows = read_csv(tmp_path / "predictions.csv")
    assert rows[0] == ["path", "predicted", "probability", "top2", "probability2", "top3",
                       "probability3"]  # fmt: skip
    assert len(rows) == 49 and {row[1] for row in rows[1:]} <= {"a", "b", "c"}
    first = [float(rows[1][i]) for i in (2, 4, 6)]
    assert first == sorted(first, reverse=True) and sum(first) == pytest.approx(1, abs=1e-5)
    # Each row holds its own image's prediction: one image per batch cannot pair a path with
    # another image's classes, and the batched run must say the same of every path.
    writer.write_text(PREDICT_TOP3.format(output=tmp_path / "one_by_one.csv"))
    lightning_main(["predict", *args, "--config", str(writer), f"--data.predict_root={images}",
                    "--data.batch_size=1", f"--ckpt_path={best}"])  # fmt: skip
    assert_same_predictions(tmp_path / "predictions.csv", tmp_path / "one_by_one.csv")


def test_top_losses_keep_the_most_confidently_wrong_images():
    top = TopLosses(k=2)
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    # images 1, 2, 4 are wrong, with growing confidence: 2 and 4 are the worst
    logits = torch.tensor([[3.0, 0], [0, 0.5], [0, 4], [0, 3], [5, 0], [0, 1]])
    top.update(images[:3], logits[:3], labels[:3])
    top.update(images[3:], logits[3:], labels[3:])
    worst_images, predicted, true, confidence = top.result()
    assert sorted(worst_images.flatten().tolist()) == [2.0, 4.0]
    assert (predicted != true).all() and (confidence > 0.9).all()


def test_the_everyday_grid_shows_every_class_in_legible_tiles():
    labels = [0] * 30 + [1] * 30 + [2] * 30  # a validation split ordered by class
    chosen = class_example_indices(labels, total=16)
    assert [labels[i] for i in chosen] == [0] * 5 + [1] * 5 + [2] * 5
    images = torch.zeros(len(chosen), 3, 8, 8)
    grid = prediction_grid_image(images, torch.zeros(15, dtype=torch.long),
                                 torch.tensor([labels[i] for i in chosen]), ["zero", "one", "two"],
                                 [0.5] * 3, [0.5] * 3, probabilities=torch.ones(15))  # fmt: skip
    assert grid.shape[1] == 8 * TILE and TILE >= 96  # an 8 px digit drawn at 90 px
