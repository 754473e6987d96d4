"""Project callbacks for the Lightning Trainer.

PredictionWriter: ``predict`` writes a CSV with one row per image: path, predicted class name and
the model's probability for it.
CheckpointOnInterrupt: on SIGTERM (a cluster's pre-emption) or Ctrl-C, saves last.ckpt before the
process exits, so ``--ckpt_path last`` continues the run.
ValidationFigures: logs ``val/confusion_matrix``, ``val/predictions`` (every class) and
``val/top_losses`` (the most confidently wrong) images at every validation.
HyperparametersWithMetrics: the run's settings with hp/best_val_acc and hp/final_val_loss (HPARAMS).
EpochTimer: logs ``time/epoch_seconds``, the wall time of each training epoch with its validation
(the manual loop logs the same tag, so project/compare.py reads both runs the same way).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.runs.tensorboard_extras import (
    FINAL_METRICS,
    PngWriter,
    class_example_indices,
    hyperparameters,
    predict_examples,
    write_final_metrics,
    write_validation_figures,
)


class PredictionWriter(BasePredictionWriter):
    def __init__(self, output_file: str | None = None, top_k: int = 1):
        """
        Args:
            output_file: CSV to write; null for predictions.csv in the run's log folder.
            top_k: also write the 2nd .. k-th most probable classes and their probabilities
                (columns top2, probability2, ...; at most 5).
        """
        super().__init__(write_interval="epoch")
        self.output_file = output_file
        self.top_k = top_k

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
            more = range(2, min(self.top_k, len(class_names), 5) + 1)  # ranks beyond the first
            extra = [name for k in more for name in (f"top{k}", f"probability{k}")]
            writer.writerow(["path", "predicted", "probability", *extra])
            for batch in predictions:
                for image_path, classes, probabilities in zip(
                    batch["paths"],
                    batch["top_classes"].tolist(),
                    batch["top_probabilities"].tolist(),
                    strict=True,
                ):
                    ranked = [
                        value
                        for index, probability in zip(classes, probabilities, strict=True)
                        for value in (class_names[index], f"{probability:.6f}")
                    ]
                    writer.writerow([image_path, *ranked[: 2 + len(extra)]])
        rank_zero_info(f"predictions written to {path}")


class EpochTimer(Callback):
    """Log ``time/epoch_seconds``: one training epoch and the validation that ends it."""

    def __init__(self):
        self.started = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook, so it is included.
        # sync_dist: with several processes, their mean.
        pl_module.log("time/epoch_seconds", time.perf_counter() - self.started, sync_dist=True)


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


class ValidationFigures(Callback):
    """At every validation end: the confusion matrix, a grid of predictions of every class and the
    most confidently wrong validation images (``val/top_losses``), as images."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the module's on_validation_epoch_end: its per-class metrics are computed over
        # every process's images, confusion matrix included (no second count here).
        result = getattr(pl_module, "val_result", None)
        if trainer.sanity_checking or result is None:
            return
        writer = image_writer(trainer, "ValidationFigures")  # TensorBoard, or PNG files
        if trainer.is_global_zero and writer is not None:
            data = trainer.datamodule
            mean, std = data.normalization()
            step = max(trainer.global_step - 1, 0)  # the step of this epoch's val/* scalars
            dataset = data.datasets["val"]
            indices = class_example_indices(dataset.targets)
            examples = predict_examples(pl_module, dataset, indices, pl_module.device)
            write_validation_figures(
                writer, step, result["confusion"].cpu(), examples,
                data.class_names, mean, std, pl_module.top_losses["val"].result(),
            )  # fmt: skip


class ThrottledProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, redrawn at most every ``min_seconds`` (and at each epoch's end).

    Lightning's own bar redraws after every batch (``refresh_rate=1``): it formats the logged
    metrics each time, which on a GPU reads them back from the device; on the bundled digits
    (steps under 0.02 s) that cost 0.09-0.66 s of a 15 s run (docs/performance.md). A person
    cannot read faster than this anyway. project/lit/cli.py's Trainer uses it when the config names
    no bar.
    """

    def __init__(self, min_seconds: float = 0.5, leave: bool = False):
        super().__init__(refresh_rate=1, leave=leave)
        self.min_seconds = min_seconds
        self._last_drawn = float("-inf")

    def _should_update(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or now - self._last_drawn >= self.min_seconds:
            self._last_drawn = now
            return True
        return False


class HyperparametersWithMetrics(Callback):
    """The HPARAMS tab: model and data settings, with the run's best val/acc and last val/loss."""

    def __init__(self):
        self.best_val_acc, self.final_val_loss = 0.0, 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.best_val_acc, self.final_val_loss = 0.0, 0.0
        if isinstance(trainer.logger, TensorBoardLogger):
            params = hyperparameters(
                dict(pl_module.hparams),
                dict(trainer.datamodule.hparams),
                type(pl_module).__name__,
            )
            trainer.logger.log_hyperparams(params, {name: 0.0 for name in FINAL_METRICS})

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return  # only the validations inside fit count (not a `validate` run)
        if "val/acc" not in trainer.callback_metrics:
            return
        self.best_val_acc = max(self.best_val_acc, trainer.callback_metrics["val/acc"].item())
        self.final_val_loss = trainer.callback_metrics["val/loss"].item()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        final = dict(zip(FINAL_METRICS, (self.best_val_acc, self.final_val_loss), strict=True))
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.log_metrics(final, step=max(trainer.global_step - 1, 0))
        elif trainer.log_dir is not None and trainer.is_global_zero:  # CSVLogger, any other
            warn_once(trainer.logger, "HyperparametersWithMetrics", "the HPARAMS tab")
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
            path = write_final_metrics(Path(trainer.log_dir), {**metrics, **final})
            rank_zero_info(f"final metrics written to {path}")


# ---------------------------------------------------------------------------- other loggers

_WARNED: set[tuple[str, str]] = set()


def warn_once(logger, callback: str, what: str) -> None:
    """One warning per logger class and callback: what a logger other than TensorBoard skips."""
    key = (type(logger).__name__, callback)
    if key in _WARNED:
        return
    _WARNED.add(key)
    rank_zero_warn(
        f"{callback}: {key[0]} is not TensorBoard: {what} is skipped; the figures go to PNG files "
        "and the final metrics to final_metrics.csv in the run folder instead"
    )


def image_writer(trainer: Trainer, callback: str):
    """Where the figures go: TensorBoard's writer, else PNG files in the run folder (CSVLogger and
    any other logger, with one warning); None without a logger."""
    if isinstance(trainer.logger, TensorBoardLogger):
        return trainer.logger.experiment
    if trainer.logger is None or trainer.log_dir is None:  # no logger, or fast_dev_run's dummy
        return None
    warn_once(trainer.logger, callback, "TensorBoard's IMAGES tab")
    return PngWriter(Path(trainer.log_dir) / "figures")
