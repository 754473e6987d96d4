"""Shared fixtures: real image files written under pytest's tmp_path, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from project.data.digits import write_digits


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """The bundled digits written once per test session as PNG class folders + labels.csv."""
    return write_digits(tmp_path_factory.mktemp("data") / "digits")


def save_image(
    path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 10), seed: int = 0
) -> Path:
    """Write a small random image in ``mode`` to ``path`` (format from the extension)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_class_folders(root: Path, counts: dict[str, int], size=(12, 10)) -> Path:
    """root/<class>/<i>.png with counts[class] random images each."""
    for name, count in counts.items():
        for i in range(count):
            save_image(root / name / f"{i}.png", size=size, seed=hash((name, i)) % 2**32)
    return root
