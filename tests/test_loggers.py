"""Loggers other than TensorBoard (item 7 of issue 14): with CSVLogger the figures are PNG files in
the run folder and the final metrics a CSV, and each callback that cannot use the logger says so
once, naming what it skips."""

from __future__ import annotations

import csv
import warnings

import pytest

from project.lit.cli import main as lightning_main

from .helpers import CNN_CONFIG, make_class_folders

CSV_LOGGER = """
trainer:
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: {save_dir}
      name: csv_run
"""


@pytest.mark.slow
def test_with_csv_logger_figures_are_pngs_and_final_metrics_a_csv(tmp_path):
    images = make_class_folders(tmp_path / "images", {"a": 12, "b": 12}, size=(8, 8))
    config = tmp_path / "csv.yaml"
    config.write_text(CSV_LOGGER.format(save_dir=tmp_path / "logs"))
    args = [
        "--config", CNN_CONFIG, "--config", str(config), f"--data.root={images}",
        "--data.image_size=8", "--model.init_args.widths=[8]", "--trainer.max_epochs=2",
        "--trainer.precision=32-true", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = lightning_main(["fit", *args])
    run = tmp_path / "logs" / "csv_run" / "version_0"
    assert cli.trainer.log_dir == str(run)
    for tag in ("val_confusion_matrix", "val_predictions"):
        assert len(list((run / "figures" / tag).glob("step_*.png"))) == 2, tag  # one per epoch
    with open(run / "final_metrics.csv", newline="") as file:
        final = {row[0]: float(row[1]) for row in list(csv.reader(file))[1:]}
    assert {"hp/best_val_acc", "val/acc", "val/f1_macro"} <= set(final)
    assert (run / "metrics.csv").is_file() and (run / "splits.csv").is_file()
    skipped = [str(w.message) for w in caught if "CSVLogger is not TensorBoard" in str(w.message)]
    assert len(skipped) == 2, skipped  # once per callback, not once per epoch
    assert any("ValidationFigures" in m and "IMAGES tab" in m for m in skipped)
    assert any("HyperparametersWithMetrics" in m and "HPARAMS" in m for m in skipped)
