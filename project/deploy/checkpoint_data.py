"""The images export, quantize and prune check a model on, from the checkpoint alone if need be.

    found = evaluation_images(checkpoint, path, "auto")   # test, else val, else the stored sample
    print(f"checked on {found.description}")
    found.images, found.labels                             # N x 3 x S x S float32, N (or None)

Where the data a checkpoint was trained on is still at its recorded path, it is rebuilt from the
checkpoint's own hyperparameters: the same files, split and evaluation preprocessing (resize, crop,
mean and std). Lightning checkpoints keep the DataModule's arguments under
``datamodule_hyper_parameters``; the manual loop's keep the whole config under ``config`` (its
``data`` part). Where it is not (a model exported on another machine, a folder moved), every
checkpoint written since issue 34 carries a few validation images in its inference settings
(``inference.sample``: uint8 after resize/crop, with labels; ``ImageData.inference_sample``),
normalized here as evaluation does. ``--check_split none`` asks for those (or, in an older
checkpoint without them, random images: a logit check without accuracy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from project.core.errors import InputError
from project.data.datasets import DataError, find_images
from project.data.images import ImageLoadError, load_image
from project.data.pipeline import ImageData
from project.data.transforms import ToNormalizedFloat, inference_transform
from project.runs.checkpoints import CheckpointError

CHOICES = ("auto", "test", "val", "none")
RANDOM_IMAGES = 16  # --check_split none on a checkpoint without stored images


@dataclass
class Images:
    """Images to check or calibrate on, their labels (None: random images) and one line saying
    what they are."""

    images: torch.Tensor
    labels: torch.Tensor | None
    description: str


def checkpoint_data(checkpoint: dict, path: str | Path) -> ImageData:
    """``ImageData`` with the checkpoint's data arguments (no worker processes: a few batches)."""
    arguments = checkpoint.get("datamodule_hyper_parameters")
    if arguments is None:
        arguments = (checkpoint.get("config") or {}).get("data")
    if not isinstance(arguments, dict):
        raise CheckpointError(f"{path}: no data arguments stored")
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


def available_data(checkpoint: dict, path: str | Path) -> tuple[ImageData | None, str]:
    """(the checkpoint's data, "") where its files are readable at the recorded path, else
    (None, why not) in a few words."""
    try:
        data = checkpoint_data(checkpoint, path)
        data.class_names  # noqa: B018  scans the folder: a moved folder fails here
    except (DataError, CheckpointError, ImageLoadError, OSError) as error:
        return None, f"its training data is not readable here ({first_line(error)})"
    return data, ""


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def has_split(data: ImageData, split: str) -> bool:
    try:
        data._labeled(split)
    except DataError:
        return False
    return True


def split_tensors(data: ImageData, split: str, limit: int | None = None, option: str = ""):
    """(images, labels) of ``split`` with the evaluation transform: all of it, or ``limit``
    images drawn with a fixed seed (a spread of classes, not the first folder); ``limit`` above
    the split's size is an error naming ``option`` and the count."""
    dataset = data._labeled(split).with_transform(data.eval_transform())
    if limit is not None and limit > len(dataset):
        raise InputError(
            f"{option or '--calibration'} {limit}: the {split} split of {data.root} has only "
            f"{len(dataset)} images"
        )
    if limit is None:
        order = range(len(dataset))
    else:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:limit]
    pairs = [dataset[int(i)] for i in order]
    return torch.stack([image for image, _ in pairs]), torch.tensor([int(y) for _, y in pairs])


def stored_sample(checkpoint: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The checkpoint's stored validation images, normalized as evaluation does, and their
    labels; None in checkpoints written before they were stored."""
    settings = checkpoint.get("inference") or {}
    sample = settings.get("sample")
    if not isinstance(sample, dict) or "images" not in sample:
        return None
    normalize = ToNormalizedFloat(settings["mean"], settings["std"])
    images = torch.stack([normalize(image) for image in sample["images"]])
    return images, sample["labels"]


def data_description(data: ImageData, split: str, count: int) -> str:
    where = data.root if data.root is not None else "the bundled digits"
    return f"the {count:,} images of the {split} split of {where}"


def evaluation_images(checkpoint: dict, path: str | Path, choice: str = "auto") -> Images:
    """The images to compare a deployed file with its checkpoint on (``--check_split``):
    test / val: that split of the recorded data (an error where it is not there); auto: test,
    else val, else the stored sample; none: the stored sample, else random images."""
    if choice not in CHOICES:
        raise InputError(f"--check_split {choice}: use one of {', '.join(CHOICES)}")
    data, missing = (
        (None, "not asked for") if choice == "none" else available_data(checkpoint, path)
    )
    if choice in ("test", "val"):
        if data is None:
            raise InputError(f"--check_split {choice}: {path}: {missing}")
        if not has_split(data, choice):
            raise InputError(f"--check_split {choice}: {data.root} has no {choice} split")
        images, labels = split_tensors(data, choice)
        return Images(images, labels, data_description(data, choice, len(labels)))
    if data is not None:
        for split in ("test", "val"):
            if has_split(data, split):
                images, labels = split_tensors(data, split)
                note = "" if split == "test" else " (it has no test split)"
                return Images(images, labels, data_description(data, split, len(labels)) + note)
    sample = stored_sample(checkpoint)
    if sample is not None:
        reason = "--check_split none" if choice == "none" else missing
        return Images(
            *sample, f"the {len(sample[1])} validation images stored in the checkpoint ({reason})"
        )
    if choice == "none":
        size = int(checkpoint["inference"]["image_size"])
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(RANDOM_IMAGES, 3, size, size, generator=generator)
        return Images(
            images, None, f"{RANDOM_IMAGES} random images (the checkpoint stores no sample)"
        )
    raise InputError(
        f"{path}: {missing}, and the checkpoint stores no sample images (written before they "
        "were); --check_split none checks on random images"
    )


def folder_images(folder: str | Path, settings: dict, limit: int) -> torch.Tensor:
    """Up to ``limit`` images from any folder (``--calibration_root``; sorted, sub-folders too),
    prepared with the checkpoint's inference settings (as serve prepares an upload)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--calibration_root {folder}: not a folder")
    paths = find_images(folder)[:limit]
    if not paths:
        raise InputError(f"--calibration_root {folder}: no image files in it")
    transform = inference_transform(settings)
    try:
        return torch.stack([transform(load_image(path)) for path in paths])
    except ImageLoadError as error:
        raise InputError(f"--calibration_root: {first_line(error)}") from None
