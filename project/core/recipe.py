"""The training recipe in plain PyTorch: what both loops train, with which loss and optimizer.

    recipe = CNNRecipe(num_classes=10, optimizer=partial(torch.optim.AdamW, lr=5e-3))
    recipe.network                                   # the plain nn.Module that is trained
    images, targets = recipe.mix(images, labels)     # MixUp / CutMix, when configured
    loss = recipe.loss(recipe.forward(images), targets)
    schedule = recipe.configure_optimizers(total_steps=1000)   # optimizer, scheduler, interval

A recipe is everything about a training run that is not the loop: the network, the loss (label
smoothing, class weights), MixUp/CutMix, the named parameter groups (``backbone``/``head`` with
their learning-rate ratio) and the training stages (what is frozen in which epoch), and the
optimizer and LR schedule built from the injected ``optimizer`` / ``lr_scheduler`` callables.

Both loops use it: the LightningModules of project/lit/classifier.py wrap a recipe (their
``__init__`` arguments are the recipe's, so a YAML config is the same for both), and the manual
loop (project/manual/) calls it directly. No Lightning import: this is plain PyTorch.

Optimizers and schedules are injected the LightningCLI way (dependency injection): any
``torch.optim`` optimizer and any ``torch.optim.lr_scheduler`` scheduler, named by class path in
the YAML or on the command line, e.g.

    --model.init_args.optimizer torch.optim.RAdam --model.init_args.optimizer.lr 0.003
    --model.init_args.lr_scheduler torch.optim.lr_scheduler.ReduceLROnPlateau

The two schedules that need the run's step count, ``onecycle`` and ``warmup_cosine``, are named
(project/core/optimizers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import torch
from torch import nn

from project.core.errors import InputError
from project.core.loss import classification_loss
from project.core.mixing import mix_batch
from project.core.optimizers import NamedSchedule, Schedule, build_optimizer, build_schedule
from project.core.precision import resolve_channels_last
from project.core.steps import forward
from project.data.sampling import inverse_frequency_weights
from project.models.cnn import SmallCNN
from project.models.feature_cache import FeatureCache, FeatureCacheError
from project.models.pruned import shrink_to
from project.models.transfer import Stage, TransferNetwork

# The types LightningCLI calls OptimizerCallable and LRSchedulerCallable (lightning.pytorch.cli),
# written out here so that this module needs no Lightning: jsonargparse reads them the same way.
OptimizerCallable = Callable[[Iterable], torch.optim.Optimizer]
LRSchedulerCallable = Callable[
    [torch.optim.Optimizer],
    torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau,
]
# A network class that takes the class count first: model.init_args.network.class_path names it,
# its other arguments go in init_args, and num_classes comes from the data.
NetworkCallable = Callable[[int], nn.Module]


def default_optimizer(params: Iterable) -> torch.optim.Optimizer:
    """AdamW at lr 3e-3, weight decay 5e-4: what a config that names no optimizer gets."""
    return torch.optim.AdamW(params, lr=3e-3, weight_decay=5e-4)


def prepare_network(network: nn.Module, channels_last: bool, compile: bool) -> None:
    """The accelerator options, applied in place (both loops call this once)."""
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile and not getattr(network, "_compiled_call_impl", None):
        network.compile()  # nn.Module.compile: same module, same state_dict keys


class ClassifierRecipe:
    """Cross-entropy classification of ``network``'s logits, with an injected optimizer."""

    def __init__(
        self,
        network: NetworkCallable,
        num_classes: int,
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: NamedSchedule | LRSchedulerCallable | None = "onecycle",
        lr_scheduler_interval: Literal["step", "epoch"] = "epoch",
        lr_scheduler_monitor: str = "val/loss",
        warmup_fraction: float = 0.2,
        label_smoothing: float = 0.0,
        channels_last: bool | Literal["auto"] = False,
        compile: bool = False,
        class_weights: Literal["auto"] | list[float] | None = None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        pruning: dict | None = None,
    ):
        """
        Args:
            network: the network class (any nn.Module whose first argument is the class count),
                e.g. {class_path: my_package.MyNet, init_args: {width: 32}}; CNNClassifier and
                ResNetClassifier build their own.
            num_classes: number of classes; linked from the DataModule by the CLI.
            optimizer: any torch.optim optimizer with its settings, e.g. {class_path:
                torch.optim.SGD, init_args: {lr: 0.1, momentum: 0.9, nesterov: true}}; default
                AdamW(lr=3e-3, weight_decay=5e-4). Its lr is the head's where the model has a
                backbone/head split.
            lr_scheduler: onecycle or warmup_cosine (per step, over the whole run), any
                torch.optim.lr_scheduler class (e.g. ReduceLROnPlateau, StepLR), or null for a
                constant learning rate.
            lr_scheduler_interval: when a torch scheduler steps: every epoch or every step.
            lr_scheduler_monitor: the metric ReduceLROnPlateau watches (after each validation).
            warmup_fraction: share of all steps spent warming up (onecycle, warmup_cosine).
            label_smoothing: cross-entropy label smoothing.
            channels_last: weights and batches in NHWC memory order (faster convolutions on
                recent GPUs and some CPUs; measured in benchmarks/accelerator_options.py). auto:
                on in reduced precision on a GPU or a CPU with native bf16, off in float32
                (project/core/precision.py resolve_channels_last), decided by prepare_network.
            compile: ``torch.compile`` the network (its first steps compile; a C++ compiler is
                needed on CPU). In place: checkpoint keys stay ``network.*``.
            class_weights: weight each class's share of the loss: auto (inverse frequency in
                the training split, project/data/sampling.py) or one number per class.
            mixup_alpha: MixUp's Beta(alpha, alpha) per training batch, 0: off
            (project/core/mixing.py).
            cutmix_alpha: CutMix's Beta(alpha, alpha) per training batch; 0 is off.
            pruning: written by ``python -m project prune``, not by hand: {amount, source,
                layers: {layer name: widths}}; the network is built with those layer widths
                (project/models/pruned.py) and starts from the weights prune gives it, never
                from pretrained ones. null: the network's own widths.
        """
        self.network = network if isinstance(network, nn.Module) else network(num_classes)
        self.pruning = pruning
        if pruning:  # the widths are recorded, not pickled: checkpoints load weights_only
            shrink_to(self.network, pruning.get("layers") or {})
        self.num_classes = num_classes
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.lr_scheduler_monitor = lr_scheduler_monitor
        self.warmup_fraction = warmup_fraction
        self.label_smoothing = label_smoothing
        self.channels_last_option = channels_last
        # What forward uses; "auto" is decided by prepare_network (it knows device and precision).
        self.channels_last = channels_last is True
        self.compile = compile
        self.class_weights_option = class_weights
        self.class_weights: torch.Tensor | None = None  # set by use_class_counts()
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha

    # ---- the step: both loops call these ---------------------------------------------------

    def prepare_network(
        self, device: torch.device | str = "cpu", precision: str | int | None = "32-true"
    ) -> str | None:
        """channels_last and compile, applied once by each loop before its first batch, for a
        run on ``device`` at the resolved ``precision``. Returns a line to print when
        channels_last was auto (what it chose)."""
        option = self.channels_last_option
        self.channels_last = resolve_channels_last(option, device, precision)
        prepare_network(self.network, self.channels_last, self.compile)
        if option == "auto":
            kind = torch.device(device).type
            return f"channels_last: auto -> {self.channels_last} ({precision} on {kind})"
        return None

    def forward(self, images: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """The logits of ``network`` (default: this recipe's; the manual loop passes its DDP
        wrapper) for ``images``, NHWC when channels_last (project/core/steps.py)."""
        return forward(self.network if network is None else network, images, self.channels_last)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, targets, self.label_smoothing, self.class_weights)

    def mix(self, images: torch.Tensor, labels: torch.Tensor):
        """MixUp / CutMix of a training batch on the device: (images, targets); unchanged when
        both alphas are 0. Both loops call it before the forward pass (project/core/mixing.py)."""
        return mix_batch(images, labels, self.num_classes, self.mixup_alpha, self.cutmix_alpha)

    def use_class_counts(self, counts: Sequence[int] | None) -> None:
        """Resolve ``class_weights`` from the training split's class counts (auto), or check the
        given list. Both loops call it once the data is set up."""
        option = self.class_weights_option
        if option is None:
            return
        if option == "auto":
            if counts is not None:
                self.class_weights = inverse_frequency_weights(counts)
            return
        if len(option) != self.num_classes:
            raise InputError(
                f"model.class_weights has {len(option)} numbers for {self.num_classes} classes"
            )
        self.class_weights = torch.tensor([float(w) for w in option])

    # ---- what differs between models: both loops call these; they do nothing by default -----

    def load_pretrained_weights(self) -> None:
        """Fill the network with pretrained weights before a run that starts from scratch."""

    def prepare_epoch(self, epoch: int) -> str | None:
        """Change the model for training epoch ``epoch`` (freeze or unfreeze layers, ...).

        Decided from the epoch number alone, so a resumed run lands in the same state. Returns a
        line to print when something changed."""
        return None

    def check_data(self, stage: str, augmentation: str) -> None:
        """Refuse a data setting this recipe cannot train with, before training starts."""

    def param_groups(self) -> list[dict]:
        """Named parameter groups; ``lr_scale`` multiplies the optimizer's learning rate."""
        return [{"name": "model", "params": list(self.network.parameters()), "lr_scale": 1.0}]

    # ---- optimizer and schedule --------------------------------------------------------------

    def configure_optimizers(self, total_steps: int) -> Schedule:
        """The optimizer over the named groups, and its schedule (project/core/optimizers.py).

        ``total_steps``: optimizer steps in the whole run (Lightning:
        trainer.estimated_stepping_batches), the length of onecycle and warmup_cosine."""
        optimizer = build_optimizer(self.param_groups(), self.optimizer)
        return build_schedule(
            optimizer,
            self.lr_scheduler,
            total_steps=total_steps,
            warmup_fraction=self.warmup_fraction,
            interval=self.lr_scheduler_interval,
            monitor=self.lr_scheduler_monitor,
        )


class CNNRecipe(ClassifierRecipe):
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
        super().__init__(network=SmallCNN(num_classes, widths, dropout), num_classes=num_classes,
                         **kwargs)  # fmt: skip


STAGE_NAMES = {"head": "the head", "last_block": "the head and the last block", "all": "everything"}


class ResNetRecipe(ClassifierRecipe):
    """Transfer learning with any torchvision backbone (configs/resnet18.yaml; default ResNet18).

    Training goes by stages, decided from the epoch number alone (fastai's ``freeze_to``):
    the head only for ``freeze_backbone_epochs`` epochs, then also the backbone's last block for
    ``last_block_epochs`` epochs, then everything. The optimizer always holds two named groups,
    ``backbone`` (lr x backbone_lr_ratio) and ``head`` (lr). Frozen parameters have no gradients,
    so the optimizer skips them; a stage change only flips ``requires_grad``. The group count never
    changes, which is why resuming in any stage works (Lightning issue #6891 cannot happen).
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
                file, or null for random init (project/models/weights.py).
            freeze_backbone_epochs: train only the head for this many epochs; null keeps the
                backbone frozen for the whole run, 0 never freezes it.
            last_block_epochs: after the head-only epochs, train the head and the backbone's last
                block for this many epochs, then everything.
            backbone_lr_ratio: backbone learning rate = the optimizer's lr x this ratio.
            train_bn: let frozen BatchNorm layers update their running statistics.
            download: fetch missing torchvision weights (false: fail at once when offline).
            backbone_options: keyword arguments for torchvision's builder, e.g.
                {image_size: 64} for vit_* at 64 px.
            cache_features: while the backbone is frozen, compute each image's features once
                (project/models/feature_cache.py); needs data.augmentation: none.
        """
        # Built without weights: they are read by load_pretrained_weights() only, so testing or
        # predicting from a checkpoint never needs the (possibly absent) pretrained file.
        network = TransferNetwork(num_classes, backbone, None, train_bn, download, backbone_options)
        if cache_features:
            network.feature_cache = FeatureCache()
        super().__init__(network=network, num_classes=num_classes, **kwargs)
        self.weights, self.download = weights, download
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.last_block_epochs = last_block_epochs
        self.backbone_lr_ratio = backbone_lr_ratio
        self.cache_features = cache_features
        network.set_stage(self.stage_at(epoch=0))

    def check_data(self, stage: str, augmentation: str) -> None:
        if self.cache_features and stage == "fit" and augmentation != "none":
            raise FeatureCacheError(
                "model.init_args.cache_features needs --data.augmentation none: augmented "
                f"images differ every epoch (data.augmentation is {augmentation})"
            )

    def load_pretrained_weights(self) -> None:
        if self.pruning:  # the pretrained file no longer fits: prune gives the weights
            return
        self.network.load_backbone(self.weights, self.download)

    def stage_at(self, epoch: int) -> Stage:
        """Which parameters train in ``epoch``: head, last_block or all."""
        head_epochs = self.freeze_backbone_epochs
        if head_epochs is None or epoch < head_epochs:
            return "head"
        return "last_block" if epoch < head_epochs + self.last_block_epochs else "all"

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
        return [
            {
                "name": "backbone",
                "params": list(self.network.backbone.parameters()),
                "lr_scale": self.backbone_lr_ratio,
            },
            {"name": "head", "params": list(self.network.head.parameters()), "lr_scale": 1.0},
        ]


# The LightningModule class names the configs use, and the recipe each wraps: the manual loop reads
# the same YAML (model.class_path: project.lit.classifier.CNNClassifier) and builds the recipe.
# The modules that may hold them: where they live, then project/classifier.py, the alias module
# that configs, run folders' config.yaml and checkpoints written before the move still name.
LIGHTNING_MODULES = ("project.lit.classifier", "project.classifier")
RECIPES = {
    "ImageClassifier": ClassifierRecipe,
    "CNNClassifier": CNNRecipe,
    "ResNetClassifier": ResNetRecipe,
}
