"""What Lightning's ModelCheckpoint and EarlyStopping callbacks do, for the manual loop.

    stopping = EarlyStopping(settings.early_stopping)      # from the config's callbacks list
    should_stop = stopping.update(metrics)                  # after every validation
    best.update(metrics, epoch, step, save)                 # then the checkpoints

Both are read from the same YAML callbacks list as the Lightning run (project/manual/settings.py)
and keep their state in the checkpoint (``state_dict`` / ``load_state_dict``, as Lightning's
callbacks do), so a resumed run keeps its best score and its patience count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from project.manual.settings import CheckpointSettings, EarlyStoppingSettings

Save = Callable[[Path, dict], Path]  # RunState.save: writes a checkpoint, returns its path


def is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def checkpoint_name(pattern: str, epoch: int, step: int, metrics: dict[str, float]) -> str:
    """ModelCheckpoint's filename pattern, e.g. best-epoch{epoch:02d}-val_acc{val/acc:.4f}."""
    return pattern.format(epoch=epoch, step=step, **metrics) + ".ckpt"


class EarlyStopping:
    """Lightning: EarlyStopping(monitor, mode, patience, min_delta)."""

    def __init__(self, settings: EarlyStoppingSettings | None):
        self.settings = settings
        self.best: float | None = None
        self.wait = 0  # validations without improvement

    def update(self, metrics: dict[str, float]) -> bool:
        """True when training should stop after this epoch."""
        rule = self.settings
        if rule is None:
            return False
        if is_better(metrics[rule.monitor], self.best, rule.mode, rule.min_delta):
            self.best, self.wait = metrics[rule.monitor], 0
            return False
        self.wait += 1
        return self.wait >= rule.patience

    def reason(self, last_epoch: bool = False) -> str:
        """Why fit stopped; ``last_epoch``: the stop came at max_epochs' last epoch anyway."""
        rule = self.settings
        why = f"early stopping: no {rule.monitor} improvement in {rule.patience} epochs"
        return why + (", at the last of max_epochs anyway" if last_epoch else "")

    def state_dict(self) -> dict:
        return {"stop_best": self.best, "stop_wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = state["stop_best"], state["stop_wait"]


class BestCheckpoint:
    """Lightning: ModelCheckpoint(monitor=..., save_top_k=1 or -1): the best epoch's file."""

    def __init__(self, settings: CheckpointSettings | None, folder: Path):
        self.settings = settings
        self.folder = folder
        self.best_score: float | None = None
        self.best_path: Path | None = None

    def update(self, metrics: dict[str, float], epoch: int, step: int, save: Save) -> None:
        rule = self.settings
        if rule is None:
            return
        improved = is_better(metrics[rule.monitor], self.best_score, rule.mode)
        path = self.folder / checkpoint_name(rule.filename, epoch, step, metrics)
        if improved:
            self.best_score = metrics[rule.monitor]  # before saving: the file holds the new best
        if rule.save_top_k == -1:  # every epoch's file is kept
            save(path, metrics)
            self.best_path = path if improved else self.best_path
        elif rule.save_top_k == 1 and improved:  # only the best: the previous best goes
            previous, self.best_path = self.best_path, path
            save(path, metrics)
            if previous is not None and previous != path:
                previous.unlink(missing_ok=True)

    def state_dict(self) -> dict:
        return {
            "best_score": self.best_score,
            "best_path": str(self.best_path) if self.best_path else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_score = state["best_score"]
        self.best_path = Path(state["best_path"]) if state["best_path"] else None


class LatestCheckpoint:
    """Lightning: ModelCheckpoint(monitor=None, filename="last"): the file to resume from,
    rewritten after every epoch (the configs name it last.ckpt)."""

    def __init__(self, filename: str | None, folder: Path):
        self.filename = filename
        self.folder = folder
        self.path: Path | None = None

    def update(self, metrics: dict[str, float], epoch: int, step: int, save: Save) -> None:
        if not self.filename:
            return
        previous = self.path
        self.path = self.folder / checkpoint_name(self.filename, epoch, step, metrics)
        save(self.path, metrics)
        if previous is not None and previous != self.path:
            previous.unlink(missing_ok=True)
