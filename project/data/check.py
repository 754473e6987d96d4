"""``python -m project check``: read every image of a data source; report what would stop training.

    python -m project check --config configs/cnn.yaml          # the config's data section
    python -m project check --data.root path/to/images         # class folders
    python -m project check --data.root images --data.csv_file images/labels.csv

Problems (exit status 1): unreadable images (corrupt, truncated, zero bytes, not an image, a
decompression bomb), empty class folders, CSV rows with an empty field, a missing file, a file
listed twice, or a path outside the image root. Notes (training goes on): hidden entries and
non-image files passed over, images in modes other than RGB (converted), files of classes outside
``data.classes``. Then the class counts, the imbalance ratio (largest / smallest class; from 3 on
it suggests data.sampler weighted or model.class_weights auto) and the image sizes. Nothing is
trained and nothing is written except the bundled digits on first use.
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser
from PIL import Image

from project.data.datasets import DataError, Sample, scan_class_folders, scan_csv
from project.data.images import ImageLoadError, load_image
from project.data.pipeline import ImageData
from project.data.sampling import imbalance_ratio

MAX_LINES = 30  # per section; the rest are counted
# Above this largest / smallest class ratio, accuracy mostly measures the big classes.
IMBALANCE_THRESHOLD = 3.0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m project check", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile, help="a training YAML (its data:)")
    # The rest of a training config is accepted and not used: check reads only data:.
    for section in ("model", "trainer", "seed_everything", "optimizer", "lr_scheduler"):
        parser.add_argument(f"--{section}", type=Any, default=None)
    parser.add_class_arguments(ImageData, "data")  # the DataModule's own arguments, no Lightning
    return parser


def scan(data: ImageData, problems: list, notes: list[str]) -> tuple[list[Sample], list]:
    """Every sample of the source, collecting problems instead of stopping at the first."""
    hp, root = data.hparams, data.root
    if hp.csv_file is not None:
        return scan_csv(Path(hp.csv_file), root, problems, hp.allow_paths_outside_root)
    folders = [root / s for s in ("train", "val", "test") if (root / s).is_dir()]
    if not ((root / "train").is_dir() and (root / "val").is_dir()):
        folders = [root]
    samples, class_names = [], []
    for folder in folders:
        found, names = scan_class_folders(folder, problems, notes)
        # Re-index by one list of class names across train/val/test.
        class_names += [name for name in names if name not in class_names]
        samples += [(path, class_names.index(names[label])) for path, label in found]
    return samples, class_names


def describe(values: list[int]) -> str:
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}"


def report_imbalance(counts: list[int]) -> None:
    """The largest / smallest class ratio, and what to do about it above the threshold."""
    if len(counts) < 2:
        return
    ratio = imbalance_ratio(counts)
    print(f"imbalance ratio (largest / smallest class): {ratio:.1f}")
    if ratio >= IMBALANCE_THRESHOLD:
        print(
            f"suggestion: the classes are imbalanced ({ratio:.1f} : 1 >= {IMBALANCE_THRESHOLD}). "
            "Train with --data.sampler weighted or --model.init_args.class_weights auto, and "
            "choose the best checkpoint by val/f1_macro (docs/own-images.md)"
        )


def check(data: ImageData) -> int:
    """Print the report; 1 when anything would stop training, else 0."""
    hp = data.hparams
    data.prepare_data()  # the bundled digits, when root is null
    problems: list = []
    notes: list[str] = []
    source = f"{hp.csv_file} (CSV, paths relative to {data.root})" if hp.csv_file else data.root
    print(f"data check: {source}")
    samples, class_names = scan(data, problems, notes)

    counts, modes, widths, heights = Counter(), Counter(), [], []
    for path, label in samples:
        try:
            load_image(path)  # the full decode training does: corrupt and truncated files fail
        except ImageLoadError as error:
            problems.append(error)
            continue
        with Image.open(path) as image:
            modes[image.mode] += 1
            widths.append(image.width)
            heights.append(image.height)
        counts[class_names[label]] += 1
    if hp.classes is not None:
        outside = sum(n for name, n in counts.items() if name not in hp.classes)
        if outside:
            notes.append(f"{outside} readable files of classes outside data.classes: left out")
        missing = [name for name in hp.classes if name not in class_names]
        if missing:
            problems.append(DataError(f"data.classes {missing} are not in the data"))
    unusual = {mode: n for mode, n in modes.items() if mode != "RGB"}
    if unusual:
        notes.append(f"colour modes converted to RGB: {dict(sorted(unusual.items()))}")

    readable = sum(counts.values())
    print(f"  {len(samples)} image files listed, {readable} readable, {len(class_names)} classes")
    for title, lines in (("problems (would stop training)", problems), ("notes", notes)):
        if lines:
            print(f"{title}: {len(lines)}")
            for line in lines[:MAX_LINES]:
                print(f"  {line}")
            if len(lines) > MAX_LINES:
                print(f"  ... and {len(lines) - MAX_LINES} more")
    print("classes: " + ", ".join(f"{name}: {counts[name]}" for name in class_names))
    report_imbalance([counts[name] for name in class_names])
    if widths:
        print(f"image width  min / median / max: {describe(widths)} px")
        print(f"image height min / median / max: {describe(heights)} px")
    if problems:
        print(
            f"result: {len(problems)} problem(s). Fix them, or set data.skip_invalid: true to "
            "leave unreadable images out."
        )
        return 1
    print("result: OK, ready to train")
    return 0


def main(args: list[str] | None = None) -> int:
    config = build_parser().parse_args(args)
    try:
        status = check(ImageData(**config.data.as_dict()))
    except DataError as error:  # the source itself is unusable (no folder, bad CSV header)
        print(f"error: {error}", file=sys.stderr)
        status = 2
    return status
