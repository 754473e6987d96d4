"""Rendered glyphs: an offline source task and target task that show what pretraining buys.

    python -m project.transfer.glyphs [ROOT]        # writes data/glyphs once (about 10 s)

Every image is a character drawn with PIL from a TrueType font that matplotlib installs (so nothing
is downloaded), at a random size, shift, rotation (up to 20 degrees) and stroke width, with noise,
on a 32 x 32 greyscale canvas. The fonts are split in two sets that never meet:

    data/glyphs/letters/<class>/<n>.png      source: the 52 Latin letters in 16 fonts
                                             (classes "upper_A" ... "lower_z": case-insensitive
                                             file systems would merge "A" and "a")
    data/glyphs/digits/pool/<digit>/<n>.png  target, labelled pool: digits 0-9 in 6 other fonts
    data/glyphs/digits/val/<digit>/<n>.png   target, validation: 120 more per digit, same 6 fonts

``few_shot_split`` builds a ``train/`` + ``val/`` folder with k labelled images per digit drawn from
the pool, which the project's DataModule reads like any user's folder. Everything is drawn from
seeded generators: the same files on every machine with the same fonts.
"""

from __future__ import annotations

import os
import shutil
import string
import sys
import uuid
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

GLYPHS_ROOT = Path("data/glyphs")
SIZE = 32
FONT_FOLDER = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
# Held out for the digits (target): never seen by the source backbone.
TARGET_FONTS = (
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneralBol.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "DejaVuSans-Oblique.ttf",
)
SOURCE_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmti10.ttf",
    "cmmi10.ttf",
)
LETTERS = string.ascii_uppercase + string.ascii_lowercase
DIGITS = string.digits
SOURCE_PER_FONT = 9  # 52 letters x 16 fonts x 9 = 7,488 source images
POOL_PER_FONT = 10  # 10 digits x 6 fonts x 10 = 600 labelled candidates
VAL_PER_FONT = 20  # 10 digits x 6 fonts x 20 = 1,200 validation images
DONE = "done.txt"  # written last: its presence means the folder is complete


def letter_class(char: str) -> str:
    return f"{'upper' if char.isupper() else 'lower'}_{char}"


def usable_fonts(names: tuple[str, ...], chars: str) -> list[Path]:
    """The fonts that draw every character in ``chars`` (a missing glyph draws nothing or a box)."""
    usable = []
    for name in names:
        path = FONT_FOLDER / name
        if not path.is_file():
            continue
        font = ImageFont.truetype(str(path), 24)
        masks = {c: bytes(font.getmask(c)) for c in chars}
        # All distinct and non-empty: no character falls back to the same "missing" glyph.
        if len(set(masks.values())) == len(chars) and all(any(m) for m in masks.values()):
            usable.append(path)
    return usable


def draw(char: str, font_path: Path, rng: np.random.Generator) -> Image.Image:
    """One randomly placed, sized, rotated and noisy rendering of ``char`` (32 x 32, greyscale)."""
    canvas = Image.new("L", (2 * SIZE, 2 * SIZE), 0)
    font = ImageFont.truetype(str(font_path), int(rng.integers(30, 44)))
    stroke = int(rng.integers(0, 3))
    ImageDraw.Draw(canvas).text(
        (SIZE, SIZE), char, fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255
    )
    canvas = canvas.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR)
    shift = rng.integers(-5, 6, size=2)
    canvas = canvas.transform(
        canvas.size, Image.AFFINE, (1, 0, int(shift[0]), 0, 1, int(shift[1])), Image.BILINEAR
    )
    small = canvas.resize((SIZE, SIZE), Image.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32) * float(rng.uniform(0.6, 1.0))
    pixels += rng.normal(0, float(rng.uniform(5, 25)), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def write_set(
    folder: Path, chars: str, fonts: list[Path], per_font: int, seed: int, name=str
) -> None:
    rng = np.random.default_rng(seed)
    for char in chars:
        (folder / name(char)).mkdir(parents=True, exist_ok=True)
        for font_index, font in enumerate(fonts):
            for n in range(per_font):
                draw(char, font, rng).save(folder / name(char) / f"{font_index:02d}_{n:02d}.png")


def write_glyphs(root: str | Path = GLYPHS_ROOT) -> Path:
    """Write the letters and digits under ``root`` unless already there (atomic, like digits)."""
    root = Path(root)
    if (root / DONE).is_file():
        return root
    source = usable_fonts(SOURCE_FONTS, LETTERS)
    target = usable_fonts(TARGET_FONTS, DIGITS)
    staging = root.parent / f".{root.name}.partial-{uuid.uuid4().hex}"
    write_set(staging / "letters", LETTERS, source, SOURCE_PER_FONT, 0, letter_class)
    write_set(staging / "digits" / "pool", DIGITS, target, POOL_PER_FONT, 1)
    write_set(staging / "digits" / "val", DIGITS, target, VAL_PER_FONT, 2)
    fonts = [f"source: {f.name}" for f in source] + [f"target: {f.name}" for f in target]
    (staging / DONE).write_text("\n".join(fonts) + "\n")
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, root)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return root


def few_shot_split(root: Path, k: int, seed: int) -> Path:
    """``root/digits/k<k>_seed<seed>/{train,val}``: k pool images per digit, the fixed val set.

    The files are hard links (copies where links fail), so each split costs no disk space.
    """
    split = root / "digits" / f"k{k}_seed{seed}"
    if (split / DONE).is_file():
        return split
    rng = np.random.default_rng(seed)
    staging = split.parent / f".{split.name}.partial-{uuid.uuid4().hex}"
    for digit in DIGITS:
        pool = sorted((root / "digits" / "pool" / digit).glob("*.png"))
        chosen = rng.choice(len(pool), size=k, replace=False)
        _link_all([pool[i] for i in sorted(chosen)], staging / "train" / digit)
        _link_all(sorted((root / "digits" / "val" / digit).glob("*.png")), staging / "val" / digit)
    (staging / DONE).write_text(f"k={k} seed={seed}\n")
    try:
        os.rename(staging, split)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return split


def _link_all(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        try:
            os.link(file, folder / file.name)
        except OSError:
            shutil.copyfile(file, folder / file.name)


if __name__ == "__main__":
    written = write_glyphs(sys.argv[1] if len(sys.argv) > 1 else GLYPHS_ROOT)
    print(f"glyphs in {written}:\n{(written / DONE).read_text()}")
