"""project/lit/datamodule.py: seeded stratified splits, explicit split folders, loaders."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from project.data.datasets import DataError
from project.data.splits import stratified_split
from project.lit.datamodule import ImageDataModule

from .helpers import make_class_folders, save_image


def test_split_is_disjoint_complete_stratified_and_seeded():
    labels = [0] * 100 + [1] * 50 + [2] * 30
    train, val, test = stratified_split(labels, 0.1, 0.2, seed=7)
    assert set(train).isdisjoint(val) and set(train).isdisjoint(test) and set(val).isdisjoint(test)
    assert sorted(train + val + test) == list(range(len(labels)))
    assert Counter(labels[i] for i in val) == {0: 10, 1: 5, 2: 3}
    assert Counter(labels[i] for i in test) == {0: 20, 1: 10, 2: 6}
    assert stratified_split(labels, 0.1, 0.2, seed=7) == (train, val, test)
    assert stratified_split(labels, 0.1, 0.2, seed=8) != (train, val, test)
    with pytest.raises(ValueError, match="leave some samples"):
        stratified_split(labels, 0.5, 0.5, seed=0)


@pytest.mark.parametrize("val, test", [(0, 0.2), (0.2, 0), (0, 0), (0.99, 0)])
def test_a_split_may_be_empty_and_training_keeps_the_rest(val, test):
    labels = [0] * 100 + [1] * 100
    train, val_indices, test_indices = stratified_split(labels, val, test, seed=0)
    assert (len(val_indices), len(test_indices)) == (round(200 * val), round(200 * test))
    assert len(train) == 200 - len(val_indices) - len(test_indices) > 0


@pytest.mark.parametrize("val, test", [(1, 0), (1.5, 0), (0, 1), (-0.1, 0), (0, -0.1), (0.6, 0.4)])
def test_fractions_outside_the_range_are_refused_naming_both(val, test):
    with pytest.raises(ValueError) as caught:
        stratified_split([0, 1] * 10, val, test, seed=0)
    assert str(caught.value) == (
        f"val_fraction={val} and test_fraction={test} must be in [0, 1) "
        "and leave some samples for training"
    )


def test_digits_loaders_have_the_right_shapes_and_dtypes(digits_root):
    data = ImageDataModule(root=str(digits_root), image_size=16, batch_size=32, num_workers=0)
    assert data.num_classes == 10 and data.class_names == [str(d) for d in range(10)]
    data.setup("fit")
    data.setup("test")
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (32, 3, 16, 16) and images.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64
    sizes = {split: len(data.datasets[split]) for split in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797
    assert sizes["val"] == pytest.approx(180, abs=5) and sizes["test"] == pytest.approx(360, abs=5)
    # Normalized with the training images' own statistics: roughly zero mean, unit std.
    all_val = torch.cat([batch[0] for batch in data.val_dataloader()])
    assert abs(all_val.mean().item()) < 0.1 and abs(all_val.std().item() - 1) < 0.1


def test_only_training_is_shuffled(digits_root):
    data = ImageDataModule(root=str(digits_root), num_workers=0)
    data.setup("fit")
    first = [batch[1] for batch in data.val_dataloader()]
    second = [batch[1] for batch in data.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    torch.manual_seed(0)
    train_first = next(iter(data.train_dataloader()))[1]
    train_second = next(iter(data.train_dataloader()))[1]
    assert not torch.equal(train_first, train_second)


def test_cache_gives_the_same_batches(digits_root):
    plain = ImageDataModule(
        root=str(digits_root), num_workers=0, augmentation="none", cache_images=False
    )
    cached = ImageDataModule(
        root=str(digits_root), num_workers=0, augmentation="none", cache_images=True
    )
    for data in (plain, cached):
        data.setup("validate")
    for a, b in zip(plain.val_dataloader(), cached.val_dataloader(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_explicit_split_folders_are_used(tmp_path):
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        make_class_folders(tmp_path / split, {"cat": count, "dog": count})
    data = ImageDataModule(root=str(tmp_path), num_workers=0, batch_size=2)
    data.setup("fit")
    data.setup("test")
    assert data.class_names == ["cat", "dog"]
    assert [len(data.datasets[s]) for s in ("train", "val", "test")] == [8, 4, 6]


def test_classes_option_trains_on_a_subset(digits_root):
    data = ImageDataModule(root=str(digits_root), classes=["5", "6", "7", "8", "9"], num_workers=0)
    assert data.num_classes == 5
    data.setup("fit")
    labels = torch.cat([batch[1] for batch in data.val_dataloader()])
    assert set(labels.tolist()) == {0, 1, 2, 3, 4}


def test_csv_source(digits_root):
    data = ImageDataModule(
        root=str(digits_root), csv_file=str(digits_root / "labels.csv"), num_workers=0
    )
    assert data.num_classes == 10
    data.setup("fit")
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 1797 - 359


def test_bad_sources_fail_before_training(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        _ = ImageDataModule(root=str(tmp_path / "missing")).num_classes
    data = ImageDataModule(root=str(make_class_folders(tmp_path / "d", {"a": 3, "b": 3})))
    with pytest.raises(DataError, match="predict_root"):
        data.setup("predict")


def test_predict_loader_yields_paths(tmp_path, digits_root):
    save_image(tmp_path / "new" / "x.png", size=(8, 8))
    data = ImageDataModule(root=str(digits_root), predict_root=str(tmp_path / "new"), num_workers=0)
    data.setup("predict")
    images, paths = next(iter(data.predict_dataloader()))
    assert images.shape == (1, 3, 16, 16) and paths[0].endswith("x.png")


def test_a_csv_without_a_root_reads_its_paths_from_its_own_folder(tmp_path, monkeypatch):
    """docs/data.md: CSV paths are relative to --data.root, by default the CSV's folder; the
    bundled digits are not written (nor needed)."""
    folder = tmp_path / "labelled"
    make_class_folders(folder / "images", {"cat": 6, "dog": 6})
    rows = [f"images/{p.parent.name}/{p.name},{p.parent.name}" for p in folder.rglob("*.png")]
    (folder / "labels.csv").write_text("path,label\n" + "\n".join(sorted(rows)) + "\n")
    monkeypatch.chdir(tmp_path)  # a working directory where data/digits does not exist
    data = ImageDataModule(csv_file=str(folder / "labels.csv"), num_workers=0, image_size=8)
    assert data.class_names == ["cat", "dog"]
    data.setup("fit")
    assert sum(len(data.datasets[split]) for split in ("train", "val")) > 0
    assert not (tmp_path / "data").exists()


def test_inference_settings_carry_the_eval_crop_of_photos_and_none_for_the_digits(
    digits_root, tmp_path
):
    """What serve and export read from a checkpoint: the same eval crop predict applies."""
    digits = ImageDataModule(root=str(digits_root), image_size=16, num_workers=0)
    digits.setup("fit")
    assert "crop_ratio" not in digits.inference_settings()  # squashed, as predict does
    photos = make_class_folders(tmp_path / "photos", {"a": 6, "b": 6}, size=(40, 30))
    natural = ImageDataModule(
        root=str(photos), image_size=32, augmentation="natural", num_workers=0,
        mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25],
    )  # fmt: skip
    natural.setup("fit")
    assert natural.inference_settings()["crop_ratio"] == pytest.approx(256 / 224)
    assert natural.inference_settings()["crop_ratio"] == natural.eval_crop_ratio()
