"""Exercise 3, reference solution: save a checkpoint, and resume from it exactly.

Check it with ``python -m exercises.check 3 --solution``. The project's version also keeps the LR
scheduler, the gradient scaler, the random-generator states and the config, and writes the file
atomically: project/runs/checkpoints.py and ``RunState`` in project/manual/run_state.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int
) -> None:
    """Write what resuming needs to ``path``: weights, optimizer state, epochs completed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # torch.save does not create folders
    checkpoint = {
        "model": model.state_dict(),  # tensors only: loads without the model's code
        "optimizer": optimizer.state_dict(),  # Adam's moments, the step count, the LR
        "epoch": epoch,
    }
    torch.save(checkpoint, path)


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> int:
    """Restore ``model`` and ``optimizer`` from ``path``; return the epochs completed.

    No file there: nothing is restored and 0 is returned (start from the beginning).
    """
    path = Path(path)
    if not path.exists():
        print(f"no checkpoint at {path}: starting from epoch 0")
        return 0
    # map_location: tensors saved on a GPU land on ``device`` (a CPU-only machine has no
    # cuda:0); weights_only: a checkpoint is a pickle, refuse anything but tensors and plain data.
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["epoch"]
