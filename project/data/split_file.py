"""Recorded splits: which file went to train, val and test, saved with every run and reusable.

The split is seeded, so the same folder always splits the same way; but add or remove one image
and every class is shuffled anew, so yesterday's test images may now be training images. Each fit
therefore writes ``splits.csv`` (columns split, path, label; paths relative to data.root) into its
log folder, and its checkpoints carry ``data_split`` ({"sha256", "files"}) of those rows.

    python -m project fit --config configs/cnn.yaml \
        --data.split_file lightning_logs/cnn/version_0/splits.csv

reuses a saved split exactly. If the folder changed since (a file added, missing, or in another
class folder), that is an error (exit status 2) naming what changed, instead of a silent new split.
Plain Python, no Lightning import; ImageData (project/data/pipeline.py) calls it.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

from project.core.errors import InputError

FILE_NAME = "splits.csv"
SPLITS = ("train", "val", "test")
SHOWN = 3  # file names quoted per kind of change


class SplitFileError(InputError):
    """The split file cannot be used with this data (changed folder, bad file)."""


Row = tuple[str, str, str]  # (split, path relative to root, class name)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # a CSV may list files outside root (allow_paths_outside_root)
        return Path(path).resolve().as_posix()


def split_rows(by_split: dict, root: Path, class_names: Sequence[str]) -> list[Row]:
    """One row per sample of ``by_split`` ({"train": [(path, label), ...], ...})."""
    return [
        (split, _relative(path, root), class_names[label])
        for split in SPLITS
        for path, label in by_split.get(split, [])
    ]


def split_hash(rows: Sequence[Row]) -> dict:
    """What a checkpoint stores about its split: a SHA-256 of the sorted rows and their count."""
    digest = hashlib.sha256("\n".join(",".join(row) for row in sorted(rows)).encode())
    return {"sha256": digest.hexdigest(), "files": len(rows)}


def write_split_file(folder: Path, rows: Sequence[Row]) -> Path:
    path = Path(folder) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["split", "path", "label"])
        writer.writerows(rows)
    return path


def read_split_file(path: Path) -> list[Row]:
    path = Path(path)
    if not path.is_file():
        raise SplitFileError(f"data.split_file {path}: no such file")
    with open(path, newline="") as file:
        reader = csv.reader(file)
        if next(reader, None) != ["split", "path", "label"]:
            raise SplitFileError(f"{path}: not a split file (header must be split,path,label)")
        rows = [tuple(row) for row in reader if row]
    bad = [row for row in rows if len(row) != 3 or row[0] not in SPLITS]
    if bad:
        raise SplitFileError(f"{path}: rows must be train|val|test,path,label; e.g. {bad[0]}")
    return rows  # type: ignore[return-value]


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(sorted(items)[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def apply_split_file(path: Path, by_split: dict, root: Path, class_names: Sequence[str]) -> dict:
    """The current samples regrouped as the split file says; an error naming what changed when
    the files or their classes are not exactly the recorded ones."""
    recorded = read_split_file(path)
    current = {
        _relative(p, root): (p, label) for samples in by_split.values() for p, label in samples
    }
    recorded_class = {rel: name for _, rel, name in recorded}
    added = [rel for rel in current if rel not in recorded_class]
    missing = [rel for rel in recorded_class if rel not in current]
    moved = [
        f"{rel} ({recorded_class[rel]} -> {class_names[current[rel][1]]})"
        for rel in current
        if rel in recorded_class and recorded_class[rel] != class_names[current[rel][1]]
    ]
    changes = [
        f"{len(items)} file(s) {what}: {_examples(items)}"
        for items, what in ((added, "added"), (missing, "missing"), (moved, "changed class"))
        if items
    ]
    if changes:
        raise SplitFileError(
            f"data.split_file {path}: the data changed since this split was saved: "
            + "; ".join(changes)
        )
    regrouped: dict[str, list] = {split: [] for split in SPLITS}
    for split, rel, _ in recorded:
        regrouped[split].append(current[rel])
    return {split: samples for split, samples in regrouped.items() if samples or split != "test"}
