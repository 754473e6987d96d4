"""The bundled default dataset: scikit-learn's copy of the UCI handwritten digits, as PNG files.

scikit-learn ships 1,797 greyscale 8x8 digit images (10 classes) inside the package, so nothing is
downloaded. ``write_digits`` saves them once as real image files, so the default run reads files
exactly the way a user's own images are read:

    data/digits/<class>/<id>.png      one folder per class ("0" ... "9")
    data/digits/labels.csv            the same images as a table: path,label

Run it by hand with ``python -m project.data.digits [ROOT]``; the DataModule calls it for you.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

DIGITS_ROOT = Path("data/digits")
LABELS_CSV = "labels.csv"


def write_digits(root: str | Path = DIGITS_ROOT) -> Path:
    """Write the digits under ``root`` unless they are already there; return ``root``.

    Safe when several processes race (DDP ranks, parallel tests): each writes into its own temporary
    folder beside ``root`` and renames it into place. A rename is atomic: ``root`` is either absent
    or complete; the loser of the race deletes its copy.
    """
    root = Path(root)
    if (root / LABELS_CSV).is_file():
        return root
    from sklearn.datasets import load_digits  # imported here: only needed on the first run

    digits = load_digits()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{uuid.uuid4().hex}"
    rows = []
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        # Pixel values are 0..16; stretch to the 0..255 range image files use.
        image = Image.fromarray(np.round(pixels * (255.0 / 16.0)).astype(np.uint8), mode="L")
        relative = Path(str(label)) / f"{index:04d}.png"
        (staging / relative.parent).mkdir(parents=True, exist_ok=True)
        image.save(staging / relative)
        rows.append((relative.as_posix(), str(label)))
    with open(staging / LABELS_CSV, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    try:
        os.rename(staging, root)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (root / LABELS_CSV).is_file():  # not a lost race: something else is in the way
            raise
    return root


if __name__ == "__main__":
    print(write_digits(sys.argv[1] if len(sys.argv) > 1 else DIGITS_ROOT))
