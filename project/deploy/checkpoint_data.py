"""The data a checkpoint was trained on, rebuilt from its own hyperparameters: the same files,
split and evaluation preprocessing (resize, crop, mean and std), for calibration and parity checks
in ``python -m project export`` and ``python -m project quantize``.

Lightning checkpoints keep the DataModule's arguments under ``datamodule_hyper_parameters``; the
manual loop's keep the whole config under ``config`` (its ``data`` part).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from project.core.errors import InputError
from project.data.pipeline import ImageData
from project.runs.checkpoints import CheckpointError


def checkpoint_data(checkpoint: dict, path: str | Path) -> ImageData:
    """``ImageData`` with the checkpoint's data arguments (no worker processes: a few batches)."""
    arguments = checkpoint.get("datamodule_hyper_parameters")
    if arguments is None:
        arguments = (checkpoint.get("config") or {}).get("data")
    if not isinstance(arguments, dict):
        raise CheckpointError(f"{path}: no data arguments stored, so there is no test split")
    arguments = {**arguments, "num_workers": 0, "cache_images": False}
    data = ImageData(**{k: v for k, v in arguments.items() if not k.startswith("_")})
    stored = checkpoint.get("data_split")
    if stored is not None and data.split_record() != stored:
        # Another set of files than trained: the "test" images may include training images.
        print(
            f"warning: the data at {data.root} is not the split {path} was trained on "
            f"({data.split_record()['files']} files now, {stored['files']} then)",
            file=sys.stderr,
        )
    return data


def split_tensors(data: ImageData, split: str, limit: int | None = None):
    """(images, labels) of ``split`` with the evaluation transform: all of it, or ``limit``
    images drawn with a fixed seed (a spread of classes, not the first folder); ``limit`` above
    the split's size is an error naming the count."""
    dataset = data._labeled(split).with_transform(data.eval_transform())
    if limit is not None and limit > len(dataset):
        raise InputError(
            f"--calibration {limit}: the {split} split of {data.root} has only {len(dataset)} "
            "images"
        )
    if limit is None:
        order = range(len(dataset))
    else:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:limit]
    pairs = [dataset[int(i)] for i in order]
    return torch.stack([image for image, _ in pairs]), torch.tensor([int(y) for _, y in pairs])
