"""The LightningModules: what one training, validation, test and predict step does.

``ImageClassifier`` holds everything both models share (loss, accuracy, logging, optimizers); the
subclasses only say which network to build. The networks are plain nn.Modules (project/models/),
so project/manual/ trains exactly the same network without Lightning.

Metric names (TensorBoard tags, checkpoint and early-stopping monitors): train/loss, train/acc,
val/loss, val/acc, test/loss, test/acc.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from project.checkpoints import (
    fill_network,
    lightning_state_dict,
    network_state,
    restore_rng_states,
    rng_states,
)
from project.models.cnn import SmallCNN
from project.models.resnet import ResNetTransfer
from project.optim import OptimizerName, Schedule, build_optimizer, build_scheduler
from project.steps import check_finite, classification_loss, forward


def prepare_network(network: nn.Module, channels_last: bool, compile: bool) -> None:
    """The accelerator options, applied in place (both loops call this once)."""
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile and not getattr(network, "_compiled_call_impl", None):
        network.compile()  # nn.Module.compile: same module, same state_dict keys


class ImageClassifier(LightningModule):
    """Cross-entropy classification of ``network``'s logits. Subclass it to choose the network."""

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        optimizer: OptimizerName = "adamw",
        momentum: float = 0.9,
        schedule: Schedule = "onecycle",
        warmup_fraction: float = 0.2,
        step_epochs: int = 10,
        gamma: float = 0.1,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
    ):
        """
        Args:
            network: the nn.Module that maps images to logits (built by the subclass).
            num_classes: number of classes; linked from the DataModule by the CLI.
            lr: peak learning rate (of the head, where the model has a backbone/head split).
            weight_decay: decoupled weight decay (AdamW) or L2 penalty (SGD).
            optimizer: adamw or sgd (Nesterov momentum).
            momentum: SGD momentum.
            schedule: onecycle, warmup_cosine (both per batch), step (per epoch) or constant.
            warmup_fraction: share of all steps spent warming up (onecycle, warmup_cosine).
            step_epochs: epochs between LR drops (schedule: step).
            gamma: LR multiplier at each drop (schedule: step).
            label_smoothing: cross-entropy label smoothing.
            channels_last: weights and batches in NHWC memory order (faster convolutions on
                recent GPUs and some CPUs; measured in benchmarks/accelerator_options.py).
            compile: ``torch.compile`` the network (its first steps compile; a C++ compiler is
                needed on CPU). In place: checkpoint keys stay ``network.*``.
        """
        super().__init__()
        # Plain values only (no modules), so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        # One metric object per stage: their running counts must never mix.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def configure_model(self) -> None:
        # Lightning calls this before fit/validate/test/predict; the manual loop does the same.
        prepare_network(self.network, self.hparams.channels_last, self.hparams.compile)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return forward(self.network, images, self.hparams.channels_last)  # project/steps.py

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, labels, self.hparams.label_smoothing)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits, labels)
        check_finite(loss, self.current_epoch, self.global_step)  # NaN: stop, exit status 1
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, stage: str, accuracy: MulticlassAccuracy) -> dict:
        images, labels = batch
        logits = self(images)
        # Lightning averages the per-batch losses weighted by batch size over the epoch.
        self.log(f"{stage}/loss", self.loss(logits, labels), prog_bar=True, sync_dist=True)
        accuracy(logits, labels)
        self.log(f"{stage}/acc", accuracy, prog_bar=True)
        # For callbacks (ValidationFigures draws the confusion matrix from these).
        return {"predicted": logits.argmax(dim=1)}

    def validation_step(self, batch, batch_idx: int) -> dict:
        return self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx: int) -> dict:
        return self._evaluate(batch, "test", self.test_acc)

    def predict_step(self, batch: tuple[torch.Tensor, Sequence[str]], batch_idx: int) -> dict:
        images, paths = batch
        probabilities = self(images).float().softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        return {"paths": list(paths), "predicted": predicted.cpu(), "confidence": confidence.cpu()}

    # ---- what differs between models: both loops call these, they do nothing by default ------

    def load_pretrained_weights(self) -> None:
        """Fill the network with pretrained weights before a run starts from scratch.

        Lightning: called from ``setup("fit")``; the manual loop calls it unless it resumes.
        """

    def prepare_epoch(self, epoch: int) -> str | None:
        """Change the model for training epoch ``epoch`` (freeze or unfreeze layers, ...).

        Decided from the epoch number alone, so a resumed run lands in the same state. Returns a
        line to print when something changed. Lightning: ``on_train_epoch_start``; the manual
        loop calls it at the start of every epoch.
        """
        return None

    def setup(self, stage: str) -> None:
        # Runs before the first training step; when resuming, the checkpoint's weights then
        # replace these, so the pretrained file is still checked but its values not kept.
        if stage == "fit":
            self.load_pretrained_weights()

    def on_train_epoch_start(self) -> None:
        message = self.prepare_epoch(self.current_epoch)
        if message:
            self.print(message)

    def param_groups(self) -> list[dict]:
        """Named parameter groups for the optimizer; one group unless a subclass splits them."""
        return [{"name": "model", "params": list(self.network.parameters()), "lr": self.hparams.lr}]

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = build_optimizer(self.param_groups(), hp.optimizer, hp.weight_decay, hp.momentum)
        scheduler, interval = build_scheduler(
            optimizer,
            hp.schedule,
            total_steps=self.trainer.estimated_stepping_batches,
            warmup_fraction=hp.warmup_fraction,
            step_epochs=hp.step_epochs,
            gamma=hp.gamma,
        )
        # name="lr": LearningRateMonitor then logs each group as lr/<group name> (lr/backbone, ...).
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "name": "lr"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The random generators' states: a resumed run then shuffles, augments and drops out
        # exactly as the uninterrupted run would have (tests/test_manual.py checks both loops).
        checkpoint["rng_states"] = rng_states()
        data = self.trainer.datamodule if self._trainer is not None else None
        if data is not None:  # class names, image size, normalization: for export and predict
            checkpoint["inference"] = data.inference_settings()

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


class CNNClassifier(ImageClassifier):
    """SmallCNN trained from scratch (configs/cnn.yaml)."""

    def __init__(
        self,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        dropout: float = 0.1,
        **kwargs,
    ):
        """
        Args:
            num_classes: number of classes; linked from the DataModule by the CLI.
            widths: channels of each conv block (each block halves the resolution).
            dropout: dropout before the linear head.
        """
        super().__init__(SmallCNN(num_classes, widths, dropout), num_classes, **kwargs)


class ResNetClassifier(ImageClassifier):
    """ResNet18 transfer learning (configs/resnet18.yaml): frozen backbone first, then fine-tuning.

    The optimizer always holds two named groups, ``backbone`` (lr x backbone_lr_ratio) and ``head``
    (lr). While the backbone is frozen its parameters have no gradients, so the optimizer skips
    them; unfreezing only flips ``requires_grad``. The group count never changes, which is why
    resuming before or after the unfreeze works (Lightning issue #6891 cannot happen).
    """

    def __init__(
        self,
        num_classes: int = 10,
        weights: str | None = "IMAGENET1K_V1",
        freeze_backbone_epochs: int | None = 1,
        backbone_lr_ratio: float = 0.1,
        train_bn: bool = False,
        download: bool = True,
        **kwargs,
    ):
        """
        Args:
            num_classes: number of classes; linked from the DataModule by the CLI.
            weights: torchvision weights name, a local .pth/.ckpt file, or null for random init.
            freeze_backbone_epochs: train only the head for this many epochs, then everything;
                null keeps the backbone frozen for the whole run, 0 never freezes it.
            backbone_lr_ratio: backbone learning rate = lr x this ratio (differential LRs).
            train_bn: let a frozen backbone's BatchNorm layers update their running statistics.
            download: fetch missing torchvision weights (false: fail at once when offline).
        """
        # Built without weights: they are read in setup("fit") only, so testing or predicting
        # from a checkpoint of this model never needs the (possibly absent) pretrained file.
        network = ResNetTransfer(num_classes, weights=None, train_bn=train_bn)
        super().__init__(network, num_classes, **kwargs)
        network.set_backbone_frozen(self.frozen_at(epoch=0))

    def load_pretrained_weights(self) -> None:
        self.network.load_backbone(self.hparams.weights, self.hparams.download)

    def frozen_at(self, epoch: int) -> bool:
        frozen_epochs = self.hparams.freeze_backbone_epochs
        return frozen_epochs is None or epoch < frozen_epochs

    def prepare_epoch(self, epoch: int) -> str | None:
        frozen = self.frozen_at(epoch)
        if frozen == self.network.backbone_frozen:
            return None
        self.network.set_backbone_frozen(frozen)
        return f"epoch {epoch}: backbone {'frozen' if frozen else 'unfrozen'}"

    def param_groups(self) -> list[dict]:
        lr = self.hparams.lr
        return [
            {
                "name": "backbone",
                "params": list(self.network.backbone.parameters()),
                "lr": lr * self.hparams.backbone_lr_ratio,
            },
            {"name": "head", "params": list(self.network.head.parameters()), "lr": lr},
        ]
