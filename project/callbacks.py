"""Project callbacks for the Lightning Trainer.

PredictionWriter: ``predict`` writes a CSV with one row per image: path, predicted class name and
the model's probability for it.
CheckpointOnInterrupt: on SIGTERM (a cluster's pre-emption) or Ctrl-C, saves last.ckpt before the
process exits, so ``--ckpt_path last`` continues the run.
EpochTimer: logs ``time/epoch_seconds``, the wall time of each training epoch with its validation
(the manual loop logs the same tag, so project/compare.py reads both runs the same way).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class PredictionWriter(BasePredictionWriter):
    def __init__(self, output_file: str | None = None):
        """
        Args:
            output_file: CSV to write; null for predictions.csv in the run's log folder.
        """
        super().__init__(write_interval="epoch")
        self.output_file = output_file

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions, batch_indices
    ) -> None:
        path = Path(self.output_file or Path(trainer.log_dir or ".") / "predictions.csv")
        if trainer.world_size > 1:  # each process writes the share of images it predicted
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        class_names = trainer.datamodule.class_names
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["path", "predicted", "probability"])
            for batch in predictions:
                for image_path, index, probability in zip(
                    batch["paths"],
                    batch["predicted"].tolist(),
                    batch["confidence"].tolist(),
                    strict=True,
                ):
                    writer.writerow([image_path, class_names[index], f"{probability:.6f}"])
        rank_zero_info(f"predictions written to {path}")


class EpochTimer(Callback):
    """Log ``time/epoch_seconds``: one training epoch and the validation that ends it."""

    def __init__(self):
        self.started = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook, so it is included.
        pl_module.log("time/epoch_seconds", time.perf_counter() - self.started)


class CheckpointOnInterrupt(Callback):
    """Save ``last.ckpt`` when SIGTERM or Ctrl-C stops training; other errors save nothing.

    Lightning turns SIGTERM into a SIGTERMException after the current batch, and Ctrl-C into a
    KeyboardInterrupt; both pass through ``on_exception`` before the process exits non-zero.
    The checkpoint is taken mid-epoch: Lightning resumes it at the next batch count, with the
    epoch's data order drawn afresh (the manual loop resumes mid-epoch exactly).
    """

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception) -> None:
        if not isinstance(exception, SIGTERMException | KeyboardInterrupt):
            return
        if trainer.sanity_checking or trainer.checkpoint_callback is None:
            return
        folder = trainer.checkpoint_callback.dirpath
        if folder is None:
            return
        path = Path(folder) / "last.ckpt"
        trainer.save_checkpoint(path)  # atomic (AtomicCheckpointIO); refuses non-finite weights
        rank_zero_info(f"{type(exception).__name__}: saved {path}")
