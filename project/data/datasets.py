"""The custom image Dataset: a list of (file, label) samples read from class folders or a CSV.

This is the workshop's Dataset exercise written out (not a wrapper of torchvision's ImageFolder):

    dataset = ImageDataset.from_folder("data/digits")          # data/digits/<class>/<image>
    dataset = ImageDataset.from_csv("data/digits/labels.csv")  # path,label (paths relative to root)
    image, label = dataset[0]                                  # uint8 3xHxW tensor (or transformed)

Every problem found while building a dataset raises DataError with the file, row or folder in the
message, before any training starts. The data check (project/data/check.py) runs the same scans
with a ``problems`` list instead, to report every problem at once rather than stop at the first.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from project.core.errors import InputError
from project.data.images import ImageLoadError, is_hidden, is_image_file, load_image

Sample = tuple[Path, int]  # (image file, class index)
Transform = Callable[[torch.Tensor], torch.Tensor]


class DataError(InputError, ValueError):
    """The data source is unusable (missing folder, empty class, bad CSV row, ...)."""


# ----------------------------------------------------------------------------- scanning sources


def find_images(folder: Path, skipped: list[str] | None = None) -> list[Path]:
    """All image files under ``folder`` (any depth), sorted, hidden files and folders skipped.

    Symlinked folders are not followed: a link that loops or leaves the tree cannot hang the scan.
    ``skipped``, when given, receives a line for every hidden entry and non-image file passed over.
    """
    found = []
    for directory, subdirectories, files in os.walk(folder, followlinks=False):
        if skipped is not None:
            here = Path(directory)
            skipped.extend(
                f"{here / d}: hidden folder, skipped" for d in subdirectories if is_hidden(d)
            )
            skipped.extend(
                f"{here / f}: {'hidden file' if is_hidden(f) else 'not an image file'}, skipped"
                for f in files
                if not is_image_file(Path(f))
            )
        subdirectories[:] = sorted(d for d in subdirectories if not is_hidden(d))
        found.extend(Path(directory) / f for f in files if is_image_file(Path(f)))
    return sorted(found)


def class_folders(root: Path) -> list[str]:
    """The class names under ``root``: its visible sub-folders, sorted so indices are stable."""
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not is_hidden(e.name))
    if not names:
        raise DataError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    return names


def report_or_raise(problems: list[DataError] | None, error: DataError) -> None:
    """Collect ``error`` when a problems list is given (the data check), else raise it."""
    if problems is None:
        raise error
    problems.append(error)


def scan_class_folders(
    root: Path, problems: list[DataError] | None = None, skipped: list[str] | None = None
) -> tuple[list[Sample], list[str]]:
    """Samples from ``root/<class>/**/<image>``; every class folder must hold at least one image."""
    class_names = class_folders(root)
    samples: list[Sample] = []
    for index, name in enumerate(class_names):
        images = find_images(root / name, skipped)
        if not images:
            report_or_raise(
                problems, DataError(f"{root / name}: class folder holds no image files")
            )
        samples.extend((path, index) for path in images)
    return samples, class_names


def read_csv_labels(
    csv_file: Path, problems: list[DataError] | None = None
) -> list[tuple[int, str, str]]:
    """The rows of a ``path,label`` CSV as (line number, path, label), checked for shape."""
    if not csv_file.is_file():
        raise DataError(f"CSV file not found: {csv_file}")
    with open(csv_file, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"{csv_file}: missing column(s) {sorted(missing)}; the header must name path,label "
                f"(found {reader.fieldnames})"
            )
        rows = []
        for row in reader:
            line = reader.line_num
            path, label = (row["path"] or "").strip(), (row["label"] or "").strip()
            if not path or not label:
                report_or_raise(
                    problems, DataError(f"{csv_file}, line {line}: empty path or label")
                )
                continue
            rows.append((line, path, label))
    if not rows:
        raise DataError(f"{csv_file}: no rows after the header")
    return rows


def resolve_inside(root: Path, relative: str, where: str, allow_outside: bool = False) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` escapes out of ``root``.

    ``allow_outside`` (the ``data.allow_paths_outside_root`` option) accepts both, for a CSV that
    deliberately points elsewhere; the default keeps a downloaded CSV from reading any file.
    """
    path = Path(relative)
    if allow_outside:
        return path if path.is_absolute() else root / path
    if path.is_absolute():
        raise DataError(f"{where}: absolute path {relative!r}; paths must be relative to {root}")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DataError(f"{where}: path {relative!r} points outside the image root {root}")
    return root / path


def scan_csv(
    csv_file: Path,
    root: Path,
    problems: list[DataError] | None = None,
    allow_outside_root: bool = False,
) -> tuple[list[Sample], list[str]]:
    """Samples from a CSV of ``path,label``; labels are class names, paths relative to ``root``.

    Every distinct label is a class (sorted); ``keep_classes`` narrows them to a chosen subset.
    A file listed twice is an error: it could land in both the training and the test split.
    """
    rows = read_csv_labels(csv_file, problems)
    class_names = sorted({label for _, _, label in rows})
    index_of = {name: i for i, name in enumerate(class_names)}
    samples: list[Sample] = []
    first_line: dict[Path, int] = {}
    for line, relative, label in rows:
        where = f"{csv_file}, line {line}"
        try:
            path = resolve_inside(root, relative, where, allow_outside_root)
            if not path.is_file():
                raise DataError(f"{where}: image file not found: {path}")
            if path.resolve() in first_line:
                raise DataError(
                    f"{where}: {relative!r} is listed again (first on line "
                    f"{first_line[path.resolve()]})"
                )
        except DataError as error:
            report_or_raise(problems, error)
            continue
        first_line[path.resolve()] = line
        samples.append((path, index_of[label]))
    return samples, class_names


def drop_unreadable(samples: list[Sample]) -> tuple[list[Sample], list[ImageLoadError]]:
    """Decode every sample once; the readable ones, and the errors of the others."""
    kept, errors = [], []
    for path, label in samples:
        try:
            load_image(path)
        except ImageLoadError as error:
            errors.append(error)
            continue
        kept.append((path, label))
    return kept, errors


def keep_classes(
    samples: list[Sample], class_names: list[str], keep: Sequence[str]
) -> tuple[list[Sample], list[str]]:
    """Only the samples of the classes in ``keep``, re-indexed 0..len(keep)-1 in that order."""
    unknown = [name for name in keep if name not in class_names]
    if unknown:
        raise DataError(f"classes {unknown} are not in the data (found {class_names})")
    new_index = {class_names.index(name): i for i, name in enumerate(keep)}
    kept = [(path, new_index[label]) for path, label in samples if label in new_index]
    return kept, list(keep)


# ----------------------------------------------------------------------------- the Dataset


class ImageDataset(Dataset):
    """Labelled images: ``dataset[i]`` is ``(transform(image), class_index)``.

    ``images`` optionally holds every image already decoded (uint8 tensors, in sample order), so
    each epoch skips PNG/JPEG decoding; ``with_transform`` shares it rather than copying it.
    ``transform_batches``: see ``__getitems__``.
    """

    def __init__(
        self,
        samples: list[Sample],
        class_names: list[str],
        transform: Transform | None = None,
        images: list[torch.Tensor] | None = None,
        transform_batches: bool = False,
    ):
        self.samples = samples
        self.class_names = class_names
        self.transform = transform
        self.images = images
        self.transform_batches = transform_batches and images is not None

    @classmethod
    def from_folder(cls, root: str | Path, transform: Transform | None = None) -> ImageDataset:
        samples, class_names = scan_class_folders(Path(root))
        return cls(samples, class_names, transform)

    @classmethod
    def from_csv(
        cls,
        csv_file: str | Path,
        root: str | Path | None = None,
        transform: Transform | None = None,
    ) -> ImageDataset:
        csv_file = Path(csv_file)
        samples, class_names = scan_csv(csv_file, Path(root) if root else csv_file.parent)
        return cls(samples, class_names, transform)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> torch.Tensor:
        """The untransformed uint8 image of sample ``index`` (from memory when decoded already)."""
        if self.images is not None:
            return self.images[index]
        path = self.samples[index][0]
        try:
            return load_image(path)
        except ImageLoadError as error:
            # Also raised in DataLoader workers: the index finds the sample, the path the file.
            raise ImageLoadError(f"{error} [dataset index {index}]") from error

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.read(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.samples[index][1]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch's samples in one call (the DataLoader calls this when a dataset has it).

        Without ``transform_batches``: one ``__getitem__`` per index, as without this method.
        With it (set by the DataModule only for cached images of one size and a transform with
        nothing random in it: the square cache, project/data/cache.py), the batch's images are
        stacked and transformed in one call. For small images the transform's fixed cost per
        call is most of the time: one call per batch instead of one per image (and the square
        cache) took the digits' training loader from 17 thousand to 146 thousand images a second
        (``python -m benchmarks.input_pipeline``, dev VM). Same values: each step works pixel by
        pixel or is a resize to the size the images already have.
        """
        if not self.transform_batches:
            return [self[index] for index in indices]
        # One call for the whole batch: only right when the transform has nothing random (a
        # random crop would be the same for every image) and the images share one size.
        images = torch.stack([self.images[index] for index in indices])
        if self.transform is not None:
            images = self.transform(images)
        labels = [self.samples[index][1] for index in indices]
        return list(zip(images, labels, strict=True))

    def decode_all(self, shrink: Transform | None = None) -> ImageDataset:
        """Decode every image once into memory; returns self.

        ``shrink`` is applied to each image as it is decoded, so only the shrunk copy is kept
        (project/data/cache.py: the cache holds images at the training resolution).
        """
        if self.images is None:
            images = (self.read(i) for i in range(len(self)))
            self.images = [shrink(image) if shrink else image for image in images]
        return self

    def with_transform(
        self, transform: Transform | None, transform_batches: bool = False
    ) -> ImageDataset:
        """The same samples (and decoded images, shared) with another transform."""
        return ImageDataset(
            self.samples, self.class_names, transform, self.images, transform_batches
        )


class UnlabeledImageDataset(Dataset):
    """Images to predict on: every image under a folder; ``dataset[i]`` is ``(image, path)``."""

    def __init__(self, root: str | Path, transform: Transform | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"predict folder not found: {root}")
        self.paths = find_images(root)
        if not self.paths:
            raise DataError(f"{root}: no image files to predict on")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        image = load_image(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, str(self.paths[index])
