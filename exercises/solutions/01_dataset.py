"""Exercise 1, reference solution: a custom image Dataset and its DataLoaders.

Check it with ``python -m exercises.check 1 --solution``. The project's full version, with CSV
files, EXIF orientation, 16-bit images and clear errors for broken files, is ``ImageDataset`` in
project/data/datasets.py, ``load_image`` in project/data/images.py and ``ImageDataModule._loader``
in project/lit/datamodule.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

# Compared with the lower-cased suffix, so photo.JPG counts too.
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def find_samples(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``root/<class>/**/<image>`` -> ([(image path, class index)], sorted class names)."""
    root = Path(root)
    # Sorted: os.listdir's order differs between machines, and with it the class indices.
    # Hidden entries (.ipynb_checkpoints, .DS_Store) are no classes.
    classes = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    class_to_index = {name: index for index, name in enumerate(classes)}
    samples = []
    for name in classes:
        for folder, subfolders, files in os.walk(root / name):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for file in sorted(files):
                if not file.startswith(".") and Path(file).suffix.lower() in IMAGE_EXTENSIONS:
                    samples.append((Path(folder) / file, class_to_index[name]))
    return samples, classes


class FolderDataset(Dataset):
    """Images in class folders: ``dataset[i]`` is ``(transform(image), class index)``."""

    def __init__(self, root: str | Path, transform: Callable | None = None):
        self.samples, self.classes = find_samples(root)
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        with Image.open(path) as image:
            # Greyscale (L), palette (P), CMYK, RGBA...: one RGB layout for the network.
            image = image.convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def build_transform(image_size: int, mean: list[float], std: list[float]) -> Callable:
    """PIL image -> float tensor 3 x image_size x image_size, scaled to [0, 1], normalized."""
    return transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),  # uint8 0..255 (H, W, C) -> float 0..1 (C, H, W)
            transforms.Normalize(mean, std),  # (x - mean) / std per channel
        ]
    )


def channel_mean_std(images: Iterable[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over every pixel of ``images`` (3 x H x W tensors in [0, 1])."""
    pixels = torch.cat([image.reshape(3, -1) for image in images], dim=1)  # 3 x all pixels
    return pixels.mean(dim=1).tolist(), pixels.std(dim=1).tolist()


def make_loaders(
    train_set: Dataset, val_set: Dataset, batch_size: int, num_workers: int
) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled) and the validation loader (fixed order)."""
    common = {
        "batch_size": batch_size,
        "num_workers": num_workers,  # worker processes decode images while the model trains
        "pin_memory": torch.cuda.is_available(),  # page-locked memory: faster copies to a GPU
        "persistent_workers": num_workers > 0,  # keep the workers between epochs
    }
    train_loader = DataLoader(train_set, shuffle=True, **common)
    val_loader = DataLoader(val_set, shuffle=False, **common)
    return train_loader, val_loader
