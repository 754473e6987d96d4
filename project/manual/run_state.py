"""The manual loop's state as one object, and what its checkpoint holds to continue exactly.

Lightning keeps this inside the Trainer (``trainer.fit_loop``, ``trainer.callbacks``,
``trainer.save_checkpoint``); the manual loop keeps it in ``RunState``:

    state = RunState(network, optimizer, scheduler, scaler, callbacks=[best, stopping], ...)
    state.save(path, metrics)                  # everything needed to continue, written atomically
    state.restore(load_checkpoint(path), path) # the same run, continued (weights, optimizer, LR,
                                               # GradScaler, epoch, step, callbacks' state)

A checkpoint also carries the keys Lightning's loader needs (``hyper_parameters`` with
``_class_path``, ``pytorch-lightning_version``), so ``python -m project test --ckpt_path`` and
``CNNClassifier.load_from_checkpoint`` read manual checkpoints too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from project.manual.replay import MidEpoch
from project.manual.settings import LoopSettings
from project.runs.checkpoints import (
    CheckpointError,
    fill_network,
    load_checkpoint,
    newest_last_checkpoint,
    rng_states,
    save_atomic,
)

LOOP_FORMAT = "project.manual"  # marks our checkpoints, so a Lightning .ckpt is never resumed here


@dataclass
class History:
    """What happened, step by step and epoch by epoch (the tests and project/compare.py read it)."""

    step_losses: list[float] = field(default_factory=list)
    step_lrs: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)


@dataclass
class RunState:
    network: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    interval: str  # when the scheduler steps: after every "step" or every "epoch"
    scaler: torch.amp.GradScaler
    callbacks: list  # objects with state_dict() / load_state_dict() (project/manual/callbacks.py)
    identity: dict  # what the checkpoint says about the model and data (``checkpoint_identity``)
    writes: bool = True  # False on processes other than 0: one writer, the weights are the same
    epoch: int = 0  # epochs completed
    global_step: int = 0  # optimizer steps taken
    history: History = field(default_factory=History)
    # project/core/optimizers.py Schedule: what step_scheduler needs (monitor)
    schedule: object = None

    def to_checkpoint(self, metrics: dict, mid_epoch: MidEpoch | None = None) -> dict:
        """Everything needed to continue exactly (Lightning: trainer.save_checkpoint)."""
        checkpoint = {
            "loop": LOOP_FORMAT,
            "model": self.network.state_dict(),  # the plain network's keys: no "network." prefix
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "metrics": metrics,
            # Set when a signal stopped the run inside an epoch (project/manual/replay.py).
            "mid_epoch": mid_epoch.to_checkpoint() if mid_epoch else None,
            "rng_states": rng_states(),  # the shuffles, augmentations, dropout continue the same
            **self.identity,
        }
        for callback in self.callbacks:
            checkpoint.update(callback.state_dict())
        return checkpoint

    def save(self, path: Path, metrics: dict, mid_epoch: MidEpoch | None = None) -> Path:
        """Write the checkpoint atomically (temporary file, fsync, rename: never half-written)."""
        if self.writes:
            save_atomic(self.to_checkpoint(metrics, mid_epoch), path)
        return path

    def restore(self, checkpoint: dict, path: Path) -> MidEpoch | None:
        """Continue from ``checkpoint``; returns where in an epoch it stopped, if it did."""
        if checkpoint.get("loop") != LOOP_FORMAT:
            raise CheckpointError(
                f"{path}: not a manual-loop checkpoint (resume a Lightning .ckpt with "
                f"python -m project fit --ckpt_path)"
            )
        fill_network(self.network, checkpoint["model"], path)  # strict: same architecture only
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.global_step = checkpoint["epoch"], checkpoint["global_step"]
        for callback in self.callbacks:
            callback.load_state_dict(checkpoint)
        return MidEpoch.from_checkpoint(checkpoint)


def lightning_version() -> str:
    """The installed Lightning's version, read from its package metadata without importing it
    (Lightning's loader reads it to decide on format migrations); "2.6.0" when not installed."""
    try:
        return metadata.version("lightning")
    except metadata.PackageNotFoundError:
        return "2.6.0"


def model_hyperparameters(recipe, config: dict | None) -> dict:
    """The model's init arguments as LightningCLI writes them into a checkpoint: the config's
    own values (class paths of the optimizer and scheduler, not callables), with ``_class_path``
    (the LightningModule that wraps this recipe) and ``_instantiator``, so Lightning rebuilds
    the model from a manual checkpoint too."""
    from project.core.recipe import LIGHTNING_MODULES, RECIPES

    model = (config or {}).get("model") or {}
    names = {recipe_class: name for name, recipe_class in RECIPES.items()}
    name = names.get(type(recipe), type(recipe).__name__)
    return {
        "_class_path": f"{LIGHTNING_MODULES[0]}.{name}",
        **(model.get("init_args") or {}),
        "num_classes": recipe.num_classes,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
    }


def checkpoint_identity(recipe, data, config: dict | None) -> dict:
    """The keys that say what was trained, written into every manual checkpoint."""
    return {
        "hyper_parameters": model_hyperparameters(recipe, config),
        "pytorch-lightning_version": lightning_version(),
        # class names, image size, normalization, and a few validation images (export's check)
        "inference": {**data.inference_settings(), "sample": data.inference_sample()},
        "data_split": data.split_record(),  # which files trained (project/data/split_file.py)
        "config": config or {},
    }


def read_resume_checkpoint(resume: str | Path, settings: LoopSettings) -> tuple[dict, Path]:
    """``(checkpoint, path)`` for ``--resume PATH`` or ``--resume last`` (the most recently
    written last.ckpt of this run name's manual runs). Read with weights_only=True; on the CPU,
    where the random-generator states must stay (load_state_dict copies weights to the device)."""
    if str(resume) == "last":
        root = settings.log_root
        folders = sorted(root.glob("manual_version_*"))
        if settings.log_folder is not None:
            folders.append(root / settings.log_folder)
        path = newest_last_checkpoint(folders, f"{root}/manual_version_*")
    else:
        path = Path(resume)
    return load_checkpoint(path, map_location="cpu"), path
