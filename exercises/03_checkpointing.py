"""Exercise 3: checkpointing, to resume training after a stop (Exercise phase, about 15 minutes).

Write ``save_checkpoint`` and ``load_checkpoint`` below, then check your work:

    make exercise N=3            # or: python -m exercises.check 3

The checker saves and loads real files with your functions: into a folder that does not exist yet,
reading them back safely, resuming an Adam run and comparing its weights with a run that never
stopped, loading for a given device, and loading where no checkpoint exists. When every check
passes, compare with exercises/solutions/03_checkpointing.py and with the project's version:
project/runs/checkpoints.py (atomic writes, safe loads) and ``RunState`` in
project/manual/run_state.py (what the manual loop's checkpoint holds).

Hints
- A checkpoint is a dict: ``{"model": model.state_dict(), "optimizer": optimizer.state_dict(),
  "epoch": epoch}``, written with ``torch.save(checkpoint, path)``.
- ``torch.save`` does not create folders: ``Path(path).parent.mkdir(parents=True, exist_ok=True)``.
- Check that the file exists before loading it (``Path(path).exists()``); none yet means start at 0.
- ``torch.load(path, map_location=device, weights_only=True)``: ``map_location`` puts tensors saved
  on a GPU onto ``device``; ``weights_only`` refuses anything but tensors and plain values.
- Restore with ``model.load_state_dict(...)`` and ``optimizer.load_state_dict(...)``.

Common mistakes (the checker catches each)
- no optimizer state: Adam's moment estimates are lost, the resumed run trains differently;
- no folder: ``torch.save`` fails when the folder does not exist;
- no device mapping: a checkpoint saved on a GPU does not load on a CPU-only machine;
- saving the whole model (``torch.save(model)``): it needs the same code to load, and loading a
  pickle can run code;
- not checking that the file exists: the first run, with no checkpoint yet, crashes;
- ``model.state_dict`` without parentheses (the method, pickled with the whole model);
- ``model.load_state_dict(checkpoint)``: the whole dict instead of ``checkpoint["model"]``;
- ``os.makedirs(folder)`` without ``exist_ok=True``: the second save into the folder fails;
- ``optimizer.state_dict`` without parentheses; ``torch.save(path, checkpoint)`` (the object
  comes first); another model's weights saved (a network built again inside save_checkpoint);
- the epoch returned plus one (the loop resumes at ``range(completed, epochs)``: one epoch is
  skipped), the whole checkpoint returned, or None for a missing file instead of 0;
- ``map_location="cuda"`` hard-coded (pass the device you are given).

Ask yourself (the checker cannot see these)
- Does your training loop save after the epoch's last update, with the epochs completed, and
  resume with ``range(load_checkpoint(...), epochs)``?
- A run with an LR scheduler, a GradScaler or random augmentation needs their states too
  (``scheduler.state_dict()``, ``scaler.state_dict()``, the RNG states): this exercise has none;
  ``RunState`` in project/manual/run_state.py keeps them all.
- ``load_state_dict(..., strict=False)`` hides keys that do not match: use it only where you mean
  it (exercise 4's missing ``fc``), and look at the keys it returns.
- Is the model on its device before ``optimizer.load_state_dict``? The optimizer's state follows
  the parameters' device at loading time.
- What does a crash halfway through ``torch.save`` leave? A half-written ``last.pt``; write to a
  temporary file and rename it (``save_atomic`` in project/runs/checkpoints.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int
) -> None:
    """Write what resuming needs to ``path``: weights, optimizer state, epochs completed."""
    raise NotImplementedError(
        "TODO: save_checkpoint: create the folder, torch.save a dict of the model's and the "
        "optimizer's state_dicts and the epoch"
    )


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> int:
    """Restore ``model`` and ``optimizer`` from ``path``; return the epochs completed.

    No file there: nothing is restored and 0 is returned (start from the beginning).
    """
    raise NotImplementedError(
        "TODO: load_checkpoint: return 0 if the file is missing, else torch.load with "
        "map_location, load both state_dicts, return the epoch"
    )
