"""Exercise 1: a custom image Dataset and its DataLoaders (Exercise phase, about 15 minutes).

Write the five pieces below, then check your work:

    make exercise N=1            # or: python -m exercises.check 1

The checker writes real image files (PNG, JPEG, BMP, GIF; greyscale, palette and CMYK ones; hidden
folders and files, a text file beside the class folders and one inside) and runs your code on them,
listing folders in reverse order (your filesystem may list them sorted, another machine's will
not); each failing line names the mistake and where to look. When every check passes, compare
with exercises/solutions/01_dataset.py and with the project's version: ``ImageDataset`` in
project/data/datasets.py, ``load_image`` in project/data/images.py, ``ImageData._loader`` in
project/data/pipeline.py.

Hints
- Find the classes with ``os.scandir(root)`` / ``os.listdir(root)`` (sub-folders only), and the
  images in each class folder with ``os.walk`` (it also walks sub-folders).
- Map class names to indices: ``{name: index for index, name in enumerate(sorted_names)}``.
- ``Image.open(path).convert("RGB")``: every image becomes 3 channels, whatever its mode.
- ``transforms.ToTensor()`` turns a PIL image (H, W, C, 0..255) into a float tensor (C, H, W) in
  [0, 1]; ``transforms.Normalize(mean, std)`` then computes ``(x - mean) / std`` per channel.
- ``DataLoader(dataset, batch_size=..., shuffle=..., num_workers=..., pin_memory=...)``.
- lessons/01_tensors.py shows normalization by broadcasting; lessons/04_minimal_loop.py uses the
  project's Dataset in a loop.

Common mistakes (the checker catches each)
- no RGB conversion: a greyscale image has 1 channel, a CMYK one 4, a palette image 1 (indices);
- only some formats: ``.JPG`` is a JPEG too, images in sub-folders count;
- hidden folders such as ``.ipynb_checkpoints`` taken as classes, or walked inside a class; hidden
  files (macOS's ``._photo.jpg``) taken as images; a file beside the class folders taken as a
  class (no ``is_dir()``); unsorted class names, or labels numbered in listing order;
- an image in a sub-folder labelled by its own folder (``Path(folder).name``), not its class;
- wrong normalization values: no scaling to [0, 1], or ImageNet's mean/std on other images;
- no shuffle for training (batches of one class at a time); no workers (the GPU waits for the CPU);
- class names as labels (a label is the class index); ``__len__`` counting classes, not images;
  ``(label, image)`` returned instead of ``(image, label)``; the transform never applied;
- ``Resize(size)`` with one number (it keeps the aspect ratio: shapes differ); Normalize before
  ToTensor (Normalize works on tensors);
- ``image.view(-1, 3)`` on a (3, H, W) tensor mixes the channels (``reshape(3, -1)``, or
  ``permute`` first); either std divisor (N or N - 1) is right, the checker says which you used;
  an average of per-image means (a small image weighs as much as a large one), one mean or std
  for all channels, the variance for the std;
- ``pin_memory`` hard-coded or forgotten (the checker asks as on a machine with and without a GPU);
  a shuffled validation loader, ``drop_last=True`` on it (images never validated), a hard-coded
  batch size.

Ask yourself (the checker cannot see these)
- Do you measure the mean and std on the training images only? Validation images in them leak
  what the model is judged on into its input.
- Does ``__getitem__`` close each file (``with Image.open(path) as image:``)? Open files pile up
  with many workers and big folders ("Too many open files").
- Is the validation transform free of random augmentation, so every epoch judges the same images?
- Does ``num_workers`` suit your machine? ``python -m benchmarks.loader_settings`` times a few.
"""

from __future__ import annotations

import os  # noqa: F401  (os.scandir, os.walk)
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from PIL import Image  # noqa: F401  (Image.open)
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms  # noqa: F401  (transforms.Compose, Resize, ToTensor, Normalize)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def find_samples(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``root/<class>/**/<image>`` -> ([(image path, class index)], sorted class names).

    Classes are the visible sub-folders of ``root``, sorted; images are files (in the class folder
    or below it) whose lower-cased suffix is in IMAGE_EXTENSIONS.
    """
    raise NotImplementedError(
        "TODO: find_samples: sorted class folders (skip hidden ones), then os.walk each for files "
        "with an image extension"
    )


class FolderDataset(Dataset):
    """Images in class folders: ``dataset[i]`` is ``(transform(image), class index)``.

    Keep ``self.samples`` (from find_samples), ``self.classes`` and ``self.transform``.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None):
        raise NotImplementedError("TODO: FolderDataset.__init__: call find_samples, keep transform")

    def __len__(self) -> int:
        raise NotImplementedError("TODO: FolderDataset.__len__: the number of samples")

    def __getitem__(self, index: int):
        raise NotImplementedError(
            "TODO: FolderDataset.__getitem__: open the image, convert it to RGB, apply the "
            "transform, return (image, label)"
        )


def build_transform(image_size: int, mean: list[float], std: list[float]) -> Callable:
    """PIL image -> float tensor 3 x image_size x image_size, scaled to [0, 1], normalized."""
    raise NotImplementedError("TODO: build_transform: Compose([Resize, ToTensor, Normalize])")


def channel_mean_std(images: Iterable[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over every pixel of ``images`` (3 x H x W tensors in [0, 1]).

    These are the values to give Normalize: measured on the training images only.
    """
    raise NotImplementedError(
        "TODO: channel_mean_std: put all pixels of each channel together, take mean and std"
    )


def make_loaders(
    train_set: Dataset, val_set: Dataset, batch_size: int, num_workers: int
) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled) and the validation loader (fixed order), both with
    ``num_workers`` worker processes and ``pin_memory`` when a GPU is available."""
    raise NotImplementedError("TODO: make_loaders: two DataLoaders")
