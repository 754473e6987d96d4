"""A generated skewed image folder (PNG class folders), to try the class-imbalance options on.

    python -m project.data.skewed data/skewed --common 2000 --ratio 20
    python -m project check --data.root data/skewed            # imbalance ratio 20.0 : a suggestion

Two classes of small grey-noise images that differ only in brightness: ``common`` around 100,
``rare`` around 140 (per-image spread 20, pixel noise 30, 0..255). The two overlap, as real
classes do: a model that learns the class frequencies (20:1) calls most borderline images
``common``, so accuracy looks high while ``rare`` is mostly missed; data.sampler weighted or
model.class_weights auto move that border (docs/own-images.md has the measured numbers).
Nothing random is left to chance: the same arguments always write the same pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

BRIGHTNESS = {"common": 100.0, "rare": 140.0}
IMAGE_SPREAD, PIXEL_NOISE = 20.0, 30.0


def write_skewed_folder(
    root: Path, common: int = 2000, ratio: float = 20.0, size: int = 8, seed: int = 0
) -> dict[str, int]:
    """Write root/common/*.png and root/rare/*.png; returns the count of each class."""
    counts = {"common": common, "rare": max(1, round(common / ratio))}
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            level = rng.normal(BRIGHTNESS[name], IMAGE_SPREAD)
            pixels = rng.normal(level, PIXEL_NOISE, size=(size, size, 1)).repeat(3, axis=2)
            image = Image.fromarray(pixels.clip(0, 255).round().astype(np.uint8), "RGB")
            image.save(folder / f"{index:05d}.png")
    return counts


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m project.data.skewed", description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--common", type=int, default=2000, help="images of the common class")
    parser.add_argument("--ratio", type=float, default=20.0, help="common / rare")
    parser.add_argument("--size", type=int, default=8, help="image side, pixels")
    options = parser.parse_args(args)
    counts = write_skewed_folder(options.root, options.common, options.ratio, options.size)
    print(f"wrote {options.root}: {counts}")


if __name__ == "__main__":
    main()
