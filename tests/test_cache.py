"""project/data/cache.py: the decoded-image cache at training resolution, within a memory budget.

Real files under tmp_path: small JPEG "photos", the digits, and PNG headers that claim huge images
(33 bytes each) to make an estimate exceed any machine's budget without writing gigabytes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from project.data.cache import CacheTooLarge, cached_size, plan_cache
from project.lit.datamodule import ImageDataModule

from .helpers import png_header_claiming


def write_photos(root, per_class: int = 5, size=(400, 300)):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=85)
    return root


def test_cached_size_keeps_the_aspect_ratio_and_never_enlarges():
    assert cached_size(2000, 1500, 32) == (43, 32)
    assert cached_size(1500, 2000, 32) == (32, 43)
    assert cached_size(8, 8, 32) == (8, 8)  # small images: kept as they are
    assert cached_size(40, 20, 32) == (40, 20)  # shorter side already small enough
    assert cached_size(8, 8, 16, square=True) == (16, 16)  # the resize every transform begins with
    assert cached_size(2000, 1500, 16, square=True) == (16, 16)


def test_photos_are_cached_at_twice_the_training_size(tmp_path):
    data = ImageDataModule(root=str(write_photos(tmp_path / "photos")), image_size=16,
                           augmentation="natural", num_workers=0, batch_size=4)  # fmt: skip
    data.setup("fit")
    assert data.cache_plan().enabled  # "auto" and a few KB: cached
    cached = data._labeled("train").images
    assert cached is not None and all(image.shape == (3, 32, 43) for image in cached)
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32


def test_the_digits_are_cached_at_the_training_size_and_give_the_same_images(digits_root):
    """ "digits" augmentation and square evaluation both begin with the resize to 16x16: the cache
    holds its result, and every split serves exactly what it serves from the files, uncached,
    one image at a time or a batch at a time."""
    cached = ImageDataModule(root=str(digits_root), num_workers=0)  # cache_images: auto
    uncached = ImageDataModule(root=str(digits_root), num_workers=0, cache_images=False)
    cached.setup("fit")
    uncached.setup("fit")
    assert cached.cache_plan().square and cached._labeled("train").images is not None
    assert all(image.shape == (3, 16, 16) for image in cached._labeled("train").images)
    assert uncached._labeled("train").images is None
    for split in ("train", "val"):
        dataset, reference = cached.datasets[split], uncached.datasets[split]
        indices = [0, 100, len(dataset) - 1]
        for index in indices:
            image, label = dataset[index]
            expected, expected_label = reference[index]
            assert label == expected_label and torch.equal(image, expected), (split, index)
        # What the DataLoader asks for: a batch's samples at once, transformed as one tensor.
        assert dataset.transform_batches and not reference.transform_batches
        for (image, label), index in zip(dataset.__getitems__(indices), indices, strict=True):
            expected, expected_label = reference[index]
            assert label == expected_label and torch.equal(image, expected), (split, index)


def test_photos_with_a_crop_in_their_transforms_keep_twice_the_training_size(tmp_path):
    root = str(write_photos(tmp_path / "photos"))
    plan = ImageDataModule(root=root, image_size=16, augmentation="none", eval_crop=True,
                           num_workers=0).cache_plan()  # fmt: skip
    assert plan.enabled and not plan.square and plan.side == 32


def test_a_square_cache_over_the_budget_falls_back_to_the_usual_one(tmp_path):
    """Enlarging small images to a large image_size can need more memory than keeping them."""
    root = write_photos(tmp_path / "photos")  # 10 photos of 400x300
    paths = sorted(root.rglob("*.jpg"))
    square = plan_cache(True, paths, image_size=512, budget=10**8, square=True)
    assert square.enabled and square.square and square.side == 512  # 7.9 MB: fits
    fallback = plan_cache(True, paths, image_size=512, budget=5 * 10**6, square=True)
    assert fallback.enabled and not fallback.square and fallback.estimate <= 5 * 10**6
    assert "shorter side of at most 1024 px" in fallback.message


def test_over_the_budget_true_is_an_error_and_auto_stays_off(tmp_path):
    root = write_photos(tmp_path / "photos", per_class=2)
    paths = [root / "cat" / f"{i}.jpg" for i in (0, 1)]
    with pytest.raises(CacheTooLarge, match=r"2 images .* need about .* the budget is 0.0 MB"):
        plan_cache(True, paths, image_size=16, budget=100)
    plan = plan_cache("auto", paths, image_size=16, budget=100)
    assert not plan.enabled and "off" in plan.message and plan.estimate > 100
    assert plan_cache("auto", paths, image_size=16, budget=10**6).enabled
    assert not plan_cache(False, paths, image_size=16).enabled


def huge_claims(root, count: int = 400):
    """Files whose headers claim 13,000 x 13,000 pixels (507 MB each decoded): 200 GB in all."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(count // 2):
            (root / name / f"{i}.png").write_bytes(png_header_claiming(13_000, 13_000))
    return root


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_folder_too_big_for_memory_fails_before_decoding_or_is_read_from_disk(tmp_path, capsys):
    root = str(huge_claims(tmp_path / "huge"))
    forced = ImageDataModule(root=root, image_size=8192, cache_images=True, num_workers=0)
    # The files hold no pixels: decoding one would raise ImageLoadError. CacheTooLarge comes first.
    with pytest.raises(CacheTooLarge, match="cache_images: true: 400 images .* need about"):
        forced.setup("fit")
    auto = ImageDataModule(root=root, image_size=8192, num_workers=0, mean=[0.5] * 3,
                           std=[0.2] * 3)  # fmt: skip
    capsys.readouterr()
    auto.setup("fit")  # one line on process 0 (the data pipeline prints it, no Lightning)
    lines = [line for line in capsys.readouterr().out.splitlines() if "cache_images" in line]
    assert len(lines) == 1 and "off, images are read from disk every epoch" in lines[0], lines
    assert auto._labeled("train").images is None
