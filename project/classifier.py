"""The LightningModules: what one training, validation, test and predict step does.

``ImageClassifier`` holds everything both models share (loss, accuracy, logging, optimizers); the
subclasses only say which network to build. The networks are plain nn.Modules (project/models/),
so project/manual/ trains exactly the same network without Lightning.

Metric names (TensorBoard tags, checkpoint and early-stopping monitors): train/loss, train/acc,
val/loss, val/acc, test/loss, test/acc.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from lightning.pytorch import LightningModule
from torch import nn

from project.augment import hard_labels, mix_batch
from project.checkpoints import (
    fill_network,
    lightning_state_dict,
    network_state,
    restore_rng_states,
    rng_states,
)
from project.data.sampling import inverse_frequency_weights
from project.ddp_unfreeze import SyncLateUnfrozenGradients
from project.errors import InputError
from project.features import FeatureCache, FeatureCacheError
from project.metrics import TOP_K, EvaluationMetrics
from project.models.cnn import SmallCNN
from project.models.transfer import Stage, TransferNetwork
from project.monitoring import TopLosses, top_losses_image
from project.optim import OptimizerName, Schedule, build_optimizer, build_scheduler
from project.reports import report_folder, write_report
from project.steps import check_finite, classification_loss, forward, sum_dtype


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
        class_weights: Literal["auto"] | list[float] | None = None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
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
            class_weights: weight each class's share of the loss: auto (inverse frequency in
                the training split, project/data/sampling.py) or one number per class.
            mixup_alpha: MixUp's Beta(alpha, alpha) per training batch, 0: off (project/augment.py).
            cutmix_alpha: CutMix's Beta(alpha, alpha) per training batch; 0 is off.
        """
        super().__init__()
        # Plain values only (no modules), so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        # Per-class precision / recall / F1 and macro averages, and the confusion matrix whose
        # diagonal gives val/acc and test/acc (project/metrics.py). One object per stage: their
        # running counts must never mix.
        self.val_metrics = EvaluationMetrics(num_classes)
        self.test_metrics = EvaluationMetrics(num_classes)
        self.class_weights: torch.Tensor | None = None  # set by use_class_counts()
        # The most confidently wrong images of the current validation / test (monitoring.py).
        self.top_losses = {"val": TopLosses(), "test": TopLosses()}
        # Epoch train_counts_epoch's (correct, seen) and sum of loss x images, on the device
        # (count_training_batch): train/acc and train/loss_epoch.
        self.train_counts: torch.Tensor | None = None
        self.train_loss_sum: torch.Tensor | None = None
        self.train_counts_epoch = -1
        self.val_result: dict | None = None  # the last validation's per-class metrics
        self.loss_sums: dict[str, torch.Tensor] = {}  # stage: (sum of loss x images, images)

    def configure_model(self) -> None:
        # Lightning calls this before fit/validate/test/predict; the manual loop does the same.
        prepare_network(self.network, self.hparams.channels_last, self.hparams.compile)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return forward(self.network, images, self.hparams.channels_last)  # project/steps.py

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, labels, self.hparams.label_smoothing, self.class_weights)

    def use_class_counts(self, counts: Sequence[int] | None) -> None:
        """Resolve ``class_weights`` from the training split's class counts (auto), or check the
        given list. Lightning: setup(); the manual loop calls it after the data's setup."""
        option, classes = self.hparams.class_weights, self.hparams.num_classes
        if option is None:
            return
        if option == "auto":
            if counts is not None:
                self.class_weights = inverse_frequency_weights(counts)
            return
        if len(option) != classes:
            raise InputError(f"model.class_weights has {len(option)} numbers for {classes} classes")
        self.class_weights = torch.tensor([float(w) for w in option])

    def mix(self, images: torch.Tensor, labels: torch.Tensor):
        """MixUp / CutMix of a training batch on the device: (images, targets); unchanged when
        both alphas are 0. Both loops call it before the forward pass (project/augment.py)."""
        hp = self.hparams
        return mix_batch(images, labels, hp.num_classes, hp.mixup_alpha, hp.cutmix_alpha)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, labels = batch
        images, targets = self.mix(images, labels)  # MixUp / CutMix, when configured
        logits = self(images)
        loss = self.loss(logits, targets)
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
        loss = self.loss(logits, labels).detach()
        sums = self.loss_sums[stage]  # (sum of loss x images, images), float64 on the device
        sums[0] += loss.to(sums.dtype) * len(labels)
        sums[1] += len(labels)
        getattr(self, f"{stage}_metrics").update(logits, labels)  # per class (project/metrics.py)
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
        result = getattr(self, f"{stage}_metrics").compute()  # torchmetrics syncs processes
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
        data = self.trainer.datamodule if self._trainer is not None else None
        if data is not None:  # class_weights: auto counts the training split, in every stage
            self.use_class_counts(data.class_counts())

    def on_train_epoch_start(self) -> None:
        message = self.prepare_epoch(self.current_epoch)
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
        self.log("train/acc", correct / max(seen, 1))
        if self.train_loss_sum is not None:
            loss_sum = self.trainer.strategy.reduce(self.train_loss_sum, reduce_op="sum").item()
            self.log("train/loss_epoch", loss_sum / max(seen, 1))

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
        if self.train_counts is not None:  # this epoch's sums so far (mid-epoch stops)
            checkpoint["train_counts"] = {
                "epoch": self.train_counts_epoch,
                "counts": self.train_counts.cpu(),
                "loss_sum": None if self.train_loss_sum is None else self.train_loss_sum.cpu(),
            }
        data = self.trainer.datamodule if self._trainer is not None else None
        if data is not None:  # class names, image size, normalization: for export and predict
            checkpoint["inference"] = data.inference_settings()
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
    """Transfer learning with any torchvision backbone (configs/resnet18.yaml; default ResNet18).

    Training goes by stages, decided from the epoch number alone (fastai's ``freeze_to``):
    the head only for ``freeze_backbone_epochs`` epochs, then also the backbone's last block for
    ``last_block_epochs`` epochs, then everything. The optimizer always holds two named groups,
    ``backbone`` (lr x backbone_lr_ratio) and ``head`` (lr). Frozen parameters have no gradients,
    so the optimizer skips them; a stage change only flips ``requires_grad``. The group count never
    changes, which is why resuming in any stage works (Lightning issue #6891 cannot happen).
    Under DDP, parameters unfrozen after the model was wrapped are synchronized by
    ``SyncLateUnfrozenGradients`` (project/ddp_unfreeze.py), which this model adds itself.
    """

    def __init__(
        self,
        num_classes: int = 10,
        backbone: str = "resnet18",
        weights: str | None = "DEFAULT",
        freeze_backbone_epochs: int | None = 1,
        last_block_epochs: int = 0,
        backbone_lr_ratio: float = 0.1,
        train_bn: bool = False,
        download: bool = True,
        backbone_options: dict | None = None,
        cache_features: bool = False,
        **kwargs,
    ):
        """
        Args:
            num_classes: number of classes; linked from the DataModule by the CLI.
            backbone: a torchvision classification model: resnet18, resnet50, efficientnet_b0,
                mobilenet_v3_small, convnext_tiny, vit_b_16, ... (its head is found and replaced).
            weights: DEFAULT or a torchvision weights name (IMAGENET1K_V1), a local .pth/.ckpt
                file, or null for random init (project/weights.py).
            freeze_backbone_epochs: train only the head for this many epochs; null keeps the
                backbone frozen for the whole run, 0 never freezes it.
            last_block_epochs: after the head-only epochs, train the head and the backbone's last
                block for this many epochs, then everything.
            backbone_lr_ratio: backbone learning rate = lr x this ratio (differential LRs).
            train_bn: let frozen BatchNorm layers update their running statistics.
            download: fetch missing torchvision weights (false: fail at once when offline).
            backbone_options: keyword arguments for torchvision's builder, e.g.
                {image_size: 64} for vit_* at 64 px.
            cache_features: while the backbone is frozen, compute each image's features once
                (project/features.py); needs data.augmentation: none.
        """
        # Built without weights: they are read in setup("fit") only, so testing or predicting
        # from a checkpoint of this model never needs the (possibly absent) pretrained file.
        network = TransferNetwork(num_classes, backbone, None, train_bn, download, backbone_options)
        if cache_features:
            network.feature_cache = FeatureCache()
        super().__init__(network, num_classes, **kwargs)
        network.set_stage(self.stage_at(epoch=0))

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule if self._trainer is not None else None
        augmentation = getattr(data, "hparams", {}).get("augmentation", "none")
        if self.hparams.cache_features and stage == "fit" and augmentation != "none":
            raise FeatureCacheError(
                "model.init_args.cache_features needs --data.augmentation none: augmented "
                f"images differ every epoch (data.augmentation is {augmentation})"
            )
        super().setup(stage)

    def load_pretrained_weights(self) -> None:
        self.network.load_backbone(self.hparams.weights, self.hparams.download)

    def stage_at(self, epoch: int) -> Stage:
        """Which parameters train in ``epoch``: head, last_block or all."""
        head_epochs = self.hparams.freeze_backbone_epochs
        if head_epochs is None or epoch < head_epochs:
            return "head"
        return "last_block" if epoch < head_epochs + self.hparams.last_block_epochs else "all"

    def frozen_at(self, epoch: int) -> bool:
        return self.stage_at(epoch) == "head"

    def prepare_epoch(self, epoch: int) -> str | None:
        stage = self.stage_at(epoch)
        if stage == self.network.stage:
            return None
        self.network.set_stage(stage)
        trainable = sum(p.numel() for p in self.network.parameters() if p.requires_grad)
        return f"epoch {epoch}: training {STAGE_NAMES[stage]} ({trainable:,} parameters)"

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

    def configure_callbacks(self):
        # DDP only reduces the gradients of parameters that were trainable when it wrapped the
        # model; this callback reduces the ones unfrozen later (does nothing without DDP).
        return [SyncLateUnfrozenGradients()]


STAGE_NAMES = {"head": "the head", "last_block": "the head and the last block", "all": "everything"}
