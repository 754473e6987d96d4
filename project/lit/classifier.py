"""The LightningModules: thin adapters that run a plain-PyTorch recipe in Lightning's Trainer.

    # model: project.lit.classifier.CNNClassifier
    python -m project fit --config configs/cnn.yaml

Everything about *what* is trained (network, loss, MixUp/CutMix, parameter groups and stages,
optimizer and schedule) is the recipe's (project/core/recipe.py, no Lightning); this file says only
how Lightning runs it: the steps, what is logged, checkpoint hooks. The manual loop
(project/manual/) runs the same recipe without Lightning. Each class's ``__init__`` arguments are
its recipe's (``**kwargs``, which LightningCLI and jsonargparse follow into the recipe class), so
one YAML configures both loops.

    ImageClassifier   any network: model.init_args.network: {class_path: my_package.MyNet}
    CNNClassifier     SmallCNN from scratch (configs/cnn.yaml)
    ResNetClassifier  a pretrained torchvision backbone and a new head (configs/resnet18.yaml)

Metric names (TensorBoard tags, checkpoint and early-stopping monitors): train/loss, train/acc,
val/loss, val/acc, test/loss, test/acc.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info

from project.core.loss import check_finite
from project.core.metrics import TOP_K, EvaluationMetrics
from project.core.mixing import hard_labels
from project.core.recipe import ClassifierRecipe, CNNRecipe, ResNetRecipe
from project.core.steps import sum_dtype
from project.lit.ddp_unfreeze import SyncLateUnfrozenGradients
from project.runs.checkpoints import (
    fill_network,
    lightning_state_dict,
    network_state,
    restore_rng_states,
    rng_states,
)
from project.runs.tensorboard_extras import TopLosses, top_losses_image
from project.runs.test_report import report_folder, write_report


class ClassifierModule(LightningModule):
    """What every classifier does in Lightning, around ``self.recipe`` (set by the subclass)."""

    recipe: ClassifierRecipe

    def __init__(self):
        super().__init__()
        self.val_metrics: EvaluationMetrics | None = None  # made by use_recipe (class count)
        # The most confidently wrong images of the current validation / test (monitoring.py).
        self.top_losses = {"val": TopLosses(), "test": TopLosses()}
        # Epoch train_counts_epoch's (correct, seen) and sum of loss x images, on the device
        # (count_training_batch): train/acc and train/loss_epoch.
        self.train_counts: torch.Tensor | None = None
        self.train_loss_sum: torch.Tensor | None = None
        self.train_counts_epoch = -1
        self.val_result: dict | None = None  # the last validation's per-class metrics
        self.loss_sums: dict[str, torch.Tensor] = {}  # stage: (sum of loss x images, images)

    def use_recipe(self, recipe: ClassifierRecipe) -> None:
        self.recipe = recipe
        self.network = recipe.network  # a submodule: checkpoint keys network.*
        # Per-class precision / recall / F1 and macro averages, and the confusion matrix whose
        # diagonal gives val/acc and test/acc (project/core/metrics.py). One object per stage: their
        # running counts must never mix.
        self.val_metrics = EvaluationMetrics(recipe.num_classes)
        self.test_metrics = EvaluationMetrics(recipe.num_classes)

    @property
    def class_weights(self) -> torch.Tensor | None:
        return self.recipe.class_weights

    def configure_model(self) -> None:
        # Lightning calls this before fit/validate/test/predict; the manual loop does the same.
        # No Trainer under load_from_checkpoint: the module's device, float32.
        trainer = self._trainer
        device = trainer.strategy.root_device if trainer is not None else self.device
        precision = trainer.precision if trainer is not None else "32-true"
        message = self.recipe.prepare_network(device, precision)
        if message:
            rank_zero_info(message)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.recipe.forward(images)  # NHWC when channels_last (project/core/steps.py)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, labels = batch
        images, targets = self.recipe.mix(images, labels)  # MixUp / CutMix, when configured
        logits = self(images)
        loss = self.recipe.loss(logits, targets)
        # The one host read of a step: a NaN must stop training before the optimizer step.
        check_finite(loss, self.current_epoch, self.global_step)  # NaN: stop, exit status 1
        # Everything else stays on the device (on a GPU, a host read waits for the GPU): the
        # correct predictions and the loss are summed on the device, and read only every
        # log_every_n_steps (a self.log per step costs Lightning's bookkeeping every step) and
        # at the epoch's end (on_train_epoch_end).
        correct = logits.detach().argmax(dim=1) == hard_labels(targets)
        self.count_training_batch(correct, loss)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:  # as the logger does
            # On the CPU: the progress bar re-reads it at every refresh without touching the GPU.
            self.log("train/loss", loss.detach().cpu(), prog_bar=True)
            # The epoch's accuracy so far (this process's images; the epoch's end adds them all),
            # as a CPU tensor like the loss (a float would go to the device and back).
            correct_so_far, seen_so_far = self.train_counts.tolist()
            self.log("train/acc", torch.tensor(correct_so_far / seen_so_far))
        return loss

    def _evaluate(self, batch, stage: str) -> None:
        images, labels = batch
        logits = self(images)
        # Summed on the device and logged once, at epoch end (_log_evaluation): the loss weighted
        # by batch size (as Lightning averages per-batch self.log values), the accuracy from the
        # confusion matrix that the per-class metrics count anyway.
        loss = self.recipe.loss(logits, labels).detach()
        sums = self.loss_sums[stage]  # (sum of loss x images, images), float64 on the device
        sums[0] += loss.to(sums.dtype) * len(labels)
        sums[1] += len(labels)
        # per class (project/core/metrics.py)
        getattr(self, f"{stage}_metrics").update(logits, labels)
        self.top_losses[stage].update(images, logits, labels)  # on the device, no host read

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _start_evaluation(self, stage: str) -> None:
        self.top_losses[stage] = TopLosses()
        self.loss_sums[stage] = torch.zeros(2, dtype=sum_dtype(self.device), device=self.device)

    def _log_evaluation(self, stage: str) -> dict:
        """{stage}/loss, {stage}/acc and the per-class scalars over every process's images."""
        result = getattr(self, f"{stage}_metrics").compute()  # over every process
        getattr(self, f"{stage}_metrics").reset()
        loss_sum, seen = self.trainer.strategy.reduce(self.loss_sums[stage], reduce_op="sum")
        self.log(f"{stage}/loss", (loss_sum / seen.clamp(min=1)).item(), prog_bar=True)
        self.log(f"{stage}/acc", EvaluationMetrics.accuracy(result), prog_bar=True)
        self.log_dict(EvaluationMetrics.scalars(result, stage))
        return result

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def on_validation_epoch_end(self) -> None:
        self.val_result = self._log_evaluation("val")  # ValidationFigures draws its confusion

    def on_test_epoch_end(self) -> None:
        result = self._log_evaluation("test")
        trainer = self.trainer  # the report goes beside the checkpoint, else into the run folder
        has_folder = trainer.ckpt_path is not None or trainer.logger is not None
        if trainer.is_global_zero and trainer.datamodule is not None and has_folder:
            folder = report_folder(trainer.ckpt_path, trainer.log_dir or ".")
            data = trainer.datamodule
            worst = top_losses_image(
                self.top_losses["test"].result(), data.class_names, *data.normalization()
            )
            write_report(folder, result, data.class_names, worst)

    def predict_step(self, batch: tuple[torch.Tensor, Sequence[str]], batch_idx: int) -> dict:
        images, paths = batch
        probabilities = self(images).float().softmax(dim=1)
        # The most probable classes, best first: column 0 is the prediction and its probability
        # (PredictionWriter(top_k=...) writes k of them).
        top = probabilities.topk(min(TOP_K, probabilities.shape[1]), dim=1)
        return {
            "paths": list(paths),
            "top_classes": top.indices.cpu(),
            "top_probabilities": top.values.cpu(),
        }

    def setup(self, stage: str) -> None:
        # Runs before the first training step; when resuming, the checkpoint's weights then
        # replace these, so the pretrained file is still checked but its values not kept.
        data = self.trainer.datamodule if self._trainer is not None else None
        augmentation = getattr(data, "hparams", {}).get("augmentation", "none")
        self.recipe.check_data(stage, augmentation)  # e.g. cache_features with augmentation
        if stage == "fit":
            self.recipe.load_pretrained_weights()
        if data is not None:  # class_weights: auto counts the training split, in every stage
            self.recipe.use_class_counts(data.class_counts())

    def on_train_epoch_start(self) -> None:
        message = self.recipe.prepare_epoch(self.current_epoch)  # stages: freeze, unfreeze
        if message:
            self.print(message)

    def count_training_batch(self, correct: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a batch to this epoch's (correct, seen) and loss x images, on the device: reads
        nothing back.

        Started afresh at each epoch's first batch (a run resumed from a mid-epoch checkpoint
        continues the sums saved in it: Lightning then skips on_train_epoch_start)."""
        if self.train_counts is None or self.train_counts_epoch != self.current_epoch:
            self.train_counts = torch.zeros(2, dtype=torch.long, device=self.device)
            dtype = sum_dtype(self.device)  # float64 (float32 on MPS), as the manual loop sums
            self.train_loss_sum = torch.zeros((), dtype=dtype, device=self.device)
            self.train_counts_epoch = self.current_epoch
        elif self.train_counts.device != self.device:  # restored from a checkpoint, on the CPU
            self.train_counts = self.train_counts.to(self.device)
            if self.train_loss_sum is not None:  # saved on another device: its sum dtype here
                self.train_loss_sum = self.train_loss_sum.to(self.device, sum_dtype(self.device))
        self.train_counts[0] += correct.sum()
        self.train_counts[1] += len(correct)
        if self.train_loss_sum is not None:  # None: resumed from a checkpoint without it
            self.train_loss_sum += loss.detach().to(self.train_loss_sum.dtype) * len(correct)

    def on_train_epoch_end(self) -> None:
        if self.train_counts is None or self.train_counts_epoch != self.current_epoch:
            return  # no training batch in this epoch
        # Over every process's images: the sums, then one division (the manual loop's values).
        correct, seen = self.trainer.strategy.reduce(self.train_counts, reduce_op="sum").tolist()
        self.log("train/acc", correct / max(seen, 1), prog_bar=True)  # beside val/acc
        if self.train_loss_sum is not None:
            loss_sum = self.trainer.strategy.reduce(self.train_loss_sum, reduce_op="sum").item()
            self.log("train/loss_epoch", loss_sum / max(seen, 1))

    def configure_optimizers(self):
        schedule = self.recipe.configure_optimizers(self.trainer.estimated_stepping_batches)
        # name="lr": LearningRateMonitor then logs each group as lr/<group name> (lr/backbone, ...).
        scheduler = {"scheduler": schedule.scheduler, "interval": schedule.interval, "name": "lr"}
        if schedule.monitor is not None:  # ReduceLROnPlateau: Lightning passes it this metric
            scheduler["monitor"] = schedule.monitor
        return {"optimizer": schedule.optimizer, "lr_scheduler": scheduler}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        # The manual loop's rule (project/core/optimizers.py): ReduceLROnPlateau gets the metric.
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(float(metric))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The random generators' states: a resumed run then shuffles, augments and drops out
        # exactly as the uninterrupted run would have (tests/test_manual.py checks both loops).
        checkpoint["rng_states"] = rng_states()
        if self.train_counts is not None:  # this epoch's sums so far (mid-epoch stops)
            checkpoint["train_counts"] = {
                "epoch": self.train_counts_epoch,
                "counts": self.train_counts.cpu(),
                "loss_sum": None if self.train_loss_sum is None else self.train_loss_sum.cpu(),
            }
        data = self.trainer.datamodule if self._trainer is not None else None
        if data is not None:  # class names, image size, normalization: for export and predict
            # ... and a few validation images: export's check where the data is not
            settings = data.inference_settings()
            checkpoint["inference"] = {**settings, "sample": data.inference_sample()}
            checkpoint["data_split"] = data.split_record()  # project/data/split_file.py

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        path = getattr(self._trainer, "ckpt_path", None) or "checkpoint"
        # Strict, before Lightning loads it: another architecture or class count is an error
        # that names the file and lists the mismatched keys and shapes.
        state = network_state(checkpoint, path)  # either loop's format, plain network keys
        fill_network(self.network, state, path)
        if "state_dict" not in checkpoint:  # a manual-loop checkpoint: give Lightning its keys
            checkpoint["state_dict"] = lightning_state_dict(state)
        resuming_fit = self._trainer is not None and self.trainer.state.fn == "fit"
        if resuming_fit and "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])
        if resuming_fit and "train_counts" in checkpoint:
            sums = checkpoint["train_counts"]
            self.train_counts, self.train_counts_epoch = sums["counts"], sums["epoch"]
            # None in checkpoints saved before train/loss_epoch existed: the loss of the batches
            # before the stop is unknown, so that epoch logs train/acc but no train/loss_epoch.
            self.train_loss_sum = sums.get("loss_sum")


class ImageClassifier(ClassifierModule):
    """Any network: ``model.init_args.network`` names its class (first argument: the class
    count, linked from the data). Arguments: project/core/recipe.py ``ClassifierRecipe``."""

    def __init__(self, **kwargs):
        super().__init__()
        # Plain values only: under LightningCLI the config as written (class paths, not
        # callables), so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters()
        self.use_recipe(ClassifierRecipe(**kwargs))


class CNNClassifier(ClassifierModule):
    """SmallCNN trained from scratch (configs/cnn.yaml). Arguments: ``CNNRecipe``."""

    def __init__(self, **kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.use_recipe(CNNRecipe(**kwargs))


class ResNetClassifier(ClassifierModule):
    """Transfer learning (configs/resnet18.yaml). Arguments and stages: ``ResNetRecipe``.

    Under DDP, parameters unfrozen after the model was wrapped are synchronized by
    ``SyncLateUnfrozenGradients`` (project/lit/ddp_unfreeze.py), which this model adds itself.
    """

    def __init__(self, **kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.use_recipe(ResNetRecipe(**kwargs))

    def configure_callbacks(self):
        # DDP only reduces the gradients of parameters that were trainable when it wrapped the
        # model; this callback reduces the ones unfrozen later (does nothing without DDP).
        return [SyncLateUnfrozenGradients()]
