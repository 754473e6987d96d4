"""project/data/datasets.py: class folders and CSV give the same samples; bad sources are named."""

from __future__ import annotations

import pytest
import torch

from project.data.datasets import DataError, ImageDataset, UnlabeledImageDataset, keep_classes

from .helpers import make_class_folders, save_image


def test_folder_and_csv_give_the_same_samples(digits_root):
    from_folder = ImageDataset.from_folder(digits_root)
    from_csv = ImageDataset.from_csv(digits_root / "labels.csv")
    assert len(from_folder) == len(from_csv) == 1797
    assert from_folder.class_names == from_csv.class_names == [str(d) for d in range(10)]
    assert sorted(from_folder.samples) == sorted(from_csv.samples)
    image, label = from_folder[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8 and label == 0


def test_classes_are_sorted_and_hidden_entries_ignored(tmp_path):
    root = make_class_folders(tmp_path, {"zebra": 2, "apple": 3})
    save_image(root / ".ipynb_checkpoints" / "x.png")
    save_image(root / "apple" / ".hidden" / "y.png")
    (root / "apple" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    save_image(root / "apple" / "UPPER.PNG")
    (root / "apple" / "readme.txt").write_text("not an image")
    dataset = ImageDataset.from_folder(root)
    assert dataset.class_names == ["apple", "zebra"]
    assert len(dataset) == 6  # 3 + UPPER.PNG in apple, 2 in zebra
    assert dataset.targets.count(0) == 4


def test_transform_is_applied(tmp_path):
    root = make_class_folders(tmp_path, {"a": 1})
    dataset = ImageDataset.from_folder(root, transform=lambda image: image.float() / 255)
    image, _ = dataset[0]
    assert image.dtype == torch.float32 and image.max() <= 1


def test_missing_root_and_empty_class_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ImageDataset.from_folder(tmp_path / "nope")
    root = make_class_folders(tmp_path / "data", {"cats": 1})
    (root / "dogs").mkdir()
    with pytest.raises(DataError, match="dogs: class folder holds no image files"):
        ImageDataset.from_folder(root)
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageDataset.from_folder(root / "cats")


@pytest.mark.parametrize(
    "csv_text, message",
    [
        ("file,label\na.png,x\n", "missing column"),
        ("path,label\n", "no rows"),
        ("path,label\nmissing.png,x\n", "line 2: image file not found"),
        (
            "path,label\na/0.png,a\n../outside.png,a\n",
            "line 3: path '../outside.png' points outside",
        ),
        ("path,label\n/etc/passwd,a\n", "line 2: absolute path"),
        ("path,label\na/0.png,\n", "line 2: empty path or label"),
    ],
)
def test_bad_csv_rows_are_named(tmp_path, csv_text, message):
    make_class_folders(tmp_path, {"a": 1})
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(DataError, match=message):
        ImageDataset.from_csv(tmp_path / "labels.csv")


def test_keep_classes_reindexes_in_the_given_order(digits_root):
    dataset = ImageDataset.from_folder(digits_root)
    samples, names = keep_classes(dataset.samples, dataset.class_names, ["7", "3"])
    assert names == ["7", "3"]
    assert {path.parent.name for path, label in samples if label == 0} == {"7"}
    assert {path.parent.name for path, label in samples if label == 1} == {"3"}
    with pytest.raises(DataError, match="not in the data"):
        keep_classes(dataset.samples, dataset.class_names, ["cat"])


def test_unlabeled_dataset_returns_paths(tmp_path):
    save_image(tmp_path / "new" / "b.png")
    save_image(tmp_path / "new" / "sub" / "a.jpg")
    dataset = UnlabeledImageDataset(tmp_path / "new")
    assert len(dataset) == 2
    image, path = dataset[0]
    assert image.shape[0] == 3 and path.endswith("b.png")
