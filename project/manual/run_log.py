"""What the manual loop writes while it trains: TensorBoard scalars and images, and the console.

Lightning: TensorBoardLogger (the run folder and scalars), LearningRateMonitor (``lr/<group>``),
the progress bar's epoch line, and our callbacks ValidationFigures and HyperparametersWithMetrics
(project/lit/callbacks.py). The tags and steps are the same as the Lightning run's
(tests/test_manual.py checks it), so one TensorBoard overlays both:

    lightning_logs/<name>/version_<n>/          python -m project fit
    lightning_logs/<name>/manual_version_<n>/   python -m project.manual fit
"""

from __future__ import annotations

from pathlib import Path

import torch

from project.core import threads
from project.manual import distributed
from project.manual.settings import LoopSettings
from project.runs.tensorboard_extras import (
    FINAL_METRICS,
    hyperparameters,
    write_hyperparameters,
    write_validation_figures,
)

EPOCH_TAGS = ("train/acc", "val/loss", "val/acc", "time/epoch_seconds")


def next_log_dir(settings: LoopSettings) -> Path:
    """A new folder per run, beside Lightning's version_<n> (Lightning: TensorBoardLogger)."""
    if settings.log_folder is not None:
        return settings.log_root / settings.log_folder
    taken = [
        int(path.name.rsplit("_", 1)[1])
        for path in settings.log_root.glob("manual_version_*")
        if path.name.rsplit("_", 1)[1].isdigit()
    ]
    return settings.log_root / f"manual_version_{max(taken, default=-1) + 1}"


def other_loggers_note(logger_classes: tuple[str, ...]) -> str | None:
    """One line when the config names loggers other than TensorBoard (None when it does not)."""
    if not logger_classes:
        return (
            "trainer.logger false: python -m project writes no logs; the manual loop writes "
            "TensorBoard files (the folder above)"
        )
    others = [name for name in logger_classes if name != "TensorBoardLogger"]
    if not others:
        return None
    return (
        f"trainer.logger {', '.join(others)}: not implemented by the manual loop, which writes "
        "TensorBoard files (the folder above); python -m project uses it"
    )


class RunLog:
    """One run's TensorBoard folder and console lines; only process 0 writes."""

    def __init__(self, settings: LoopSettings, hyper_parameters: dict, data):
        self.settings = settings
        self.data = data
        self.main_process = distributed.rank() == 0
        self.dir = next_log_dir(settings)
        distributed.barrier()  # every process has named the folder before process 0 creates it
        # Imported here: TensorBoard's writer costs 0.3 s of start-up, and only a fit writes logs.
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.dir) if self.main_process else distributed.NoWriter()
        self.say(f"logging to {self.dir}")
        self.say(threads.describe())  # the CPU thread rule (project/core/threads.py)
        self.say(other_loggers_note(settings.logger_classes))
        if self.main_process:  # which file went where: splits.csv (project/data/split_file.py)
            data.write_split_file(self.dir)
        if settings.hyperparameters and self.main_process:  # HyperparametersWithMetrics
            model_name = hyper_parameters["_class_path"].rsplit(".", 1)[-1]
            params = hyperparameters(hyper_parameters, dict(data.hparams), model_name)
            write_hyperparameters(self.writer, params, {name: 0.0 for name in FINAL_METRICS})

    def say(self, message: str | None) -> None:
        """Print on process 0 only (Lightning: rank_zero_info); None prints nothing."""
        if message and self.main_process:
            print(message)

    def step(
        self,
        global_step: int,
        loss: torch.Tensor,
        learning_rates: dict[str, float],
        correct: torch.Tensor,
        seen: int,
    ) -> None:
        """Every ``log_every_n_steps`` steps (Lightning: Trainer(log_every_n_steps=...)): the
        step's loss and the epoch's accuracy so far (``correct`` of ``seen``, this process's)."""
        if (global_step + 1) % self.settings.log_every_n_steps:
            return
        self.writer.add_scalar("train/loss", loss, global_step)
        self.writer.add_scalar("train/acc", correct.item() / seen, global_step)
        for name, lr in learning_rates.items():  # Lightning: LearningRateMonitor
            self.writer.add_scalar(f"lr/{name}", lr, global_step)

    def epoch(self, epoch: int, step: int, metrics: dict[str, float], val: dict | None) -> None:
        """After the epoch (and its validation, where it had one): scalars, figures, a line."""
        per_class = [tag for tag in metrics if tag.startswith("val/") and tag not in EPOCH_TAGS]
        # per_class: val/f1_macro, ... (project/core/metrics.py)
        for tag in (*EPOCH_TAGS, *per_class):
            if tag in metrics:  # no val/* in an epoch without validation
                self.writer.add_scalar(tag, metrics[tag], step)
        # The epoch's mean training loss (train/loss is a single step's, every n steps).
        self.writer.add_scalar("train/loss_epoch", metrics["train/loss"], step)
        self.writer.add_scalar("epoch", epoch, step)
        # Lightning: the ValidationFigures callback. Process 0 only: it alone drew the examples.
        if val is not None and self.settings.validation_figures and self.main_process:
            write_validation_figures(
                self.writer, step, val["confusion"], val["examples"],
                self.data.class_names, *self.data.normalization(), val["top_losses"],
            )  # fmt: skip
        validation = "(no validation)"
        if "val/acc" in metrics:
            validation = f"val/loss {metrics['val/loss']:.4f}  val/acc {metrics['val/acc']:.4f}"
        self.say(
            f"epoch {epoch:3d}  train/loss {metrics['train/loss']:.4f}  "
            f"train/acc {metrics['train/acc']:.4f}  {validation}  "
            f"({metrics['time/epoch_seconds']:.1f} s)"
        )

    def finish(self, epochs: list[dict[str, float]], step: int) -> None:
        """The run's results for the HPARAMS tab (Lightning: HyperparametersWithMetrics)."""
        validated = [metrics for metrics in epochs if "val/acc" in metrics]
        if self.settings.hyperparameters and validated:
            best_val_acc = max(metrics["val/acc"] for metrics in validated)
            final = (best_val_acc, validated[-1]["val/loss"])
            for name, value in zip(FINAL_METRICS, final, strict=True):
                self.writer.add_scalar(name, value, step)

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exception) -> None:
        self.writer.close()  # also when training stops on an error or a signal: nothing is lost
