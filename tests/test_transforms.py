"""project/data/transforms.py: the per-batch random affine of the "digits" preset."""

from __future__ import annotations

import torch

from project.data.transforms import BatchRandomAffine


def test_no_motion_leaves_the_batch_unchanged():
    images = torch.randn(4, 3, 16, 16)
    still = BatchRandomAffine(fill=[0.0] * 3, degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    torch.testing.assert_close(still(images), images, atol=1e-5, rtol=1e-5)


def test_each_image_moves_differently_and_the_background_stays_black():
    black = [-0.5, -0.5, -0.5]  # the normalized value of a 0 pixel
    images = torch.full((8, 3, 16, 16), -0.5)
    images[:, :, 6:10, 6:10] = 2.0  # a bright square in the middle of a black image
    torch.manual_seed(0)
    moved = BatchRandomAffine(fill=black)(images)
    assert moved.shape == images.shape
    assert moved[:, :, 0, 0].eq(-0.5).all()  # corners stay background, not zeros
    differences = (moved[1:] - moved[:1]).abs().flatten(1).amax(dim=1)
    assert (differences > 0.1).all()  # one random motion per image, not one per batch
    torch.manual_seed(0)
    torch.testing.assert_close(BatchRandomAffine(fill=black)(images), moved)  # seeded: repeatable


def test_the_fused_normalization_matches_torchvisions_pair():
    from torchvision.transforms import v2

    from project.data.transforms import ToNormalizedFloat

    image = torch.randint(0, 256, (3, 7, 5), dtype=torch.uint8)
    mean, std = [0.2, 0.4, 0.6], [0.3, 0.2, 0.1]
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    torch.testing.assert_close(ToNormalizedFloat(mean, std)(image), reference(image))
