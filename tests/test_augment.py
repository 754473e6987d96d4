"""Augmentation beyond crop and flip: MixUp / CutMix on the device with soft targets
(project/core/mixing.py) and the TrivialAugment / RandAugment presets (project/data/transforms.py).
Each option trains through both loops' entry points (1 epoch, tiny images) and must train other
weights than the same seeded run without it."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2

from project.core.loss import classification_loss
from project.core.mixing import hard_labels, mix_batch
from project.lit.cli import main as lightning_main
from project.manual.cli import run as manual_run
from project.runs.checkpoints import load_checkpoint

from .helpers import CNN_CONFIG, make_class_folders


def test_no_alpha_changes_nothing_and_draws_no_random_numbers():
    images, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 1])
    state = torch.get_rng_state()
    mixed, targets = mix_batch(images, labels, 3)
    assert mixed is images and targets is labels  # the default run is untouched
    assert torch.equal(torch.get_rng_state(), state)


def test_mixup_blends_images_and_targets_by_the_same_share():
    torch.manual_seed(0)
    images = torch.stack([torch.full((3, 4, 4), float(i)) for i in range(4)])
    labels = torch.tensor([0, 1, 2, 3])
    mixed, targets = mix_batch(images, labels, 4, mixup_alpha=0.4)
    share = float(targets[0, 0])  # image 0 is mixed with image 3 (the batch rolled by one)
    assert torch.allclose(mixed[0], torch.full((3, 4, 4), 3 * (1 - share)))
    assert torch.allclose(targets.sum(dim=1), torch.ones(4))
    assert float(targets[0, 3]) == pytest.approx(1 - share)
    # The loss takes soft targets (cross-entropy against class probabilities).
    loss = classification_loss(torch.zeros(4, 4), targets)
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(4.0))))


def test_cutmix_targets_share_the_pasted_area():
    torch.manual_seed(1)
    images = torch.zeros(2, 1, 10, 10)
    images[1] = 1.0
    mixed, targets = mix_batch(images, torch.tensor([0, 1]), 2, cutmix_alpha=1.0)
    pasted = float(mixed[0].mean())  # the share of image 0 that came from image 1
    assert float(targets[0, 1]) == pytest.approx(pasted)
    assert hard_labels(targets).tolist() == [int(pasted > 0.5), int(pasted <= 0.5)]


def test_cutmix_pastes_one_rectangle_and_the_targets_follow_its_area():
    """torchvision's CutMix as mix_batch uses it, on an image that is not square: one
    rectangle of the partner's pixels, the same in every image, and each image's target weight
    of its own class equals the share of its pixels it kept (40 seeds)."""
    images = torch.stack([torch.zeros(1, 12, 20), torch.ones(1, 12, 20)])
    for seed in range(40):
        torch.manual_seed(seed)
        mixed, targets = mix_batch(images, torch.tensor([0, 1]), 2, cutmix_alpha=1.0)
        pasted = mixed[0, 0] == 1  # image 0 is zeros: every 1 came from image 1
        rows, cols = pasted.any(dim=1), pasted.any(dim=0)
        assert int(pasted.sum()) == int(rows.sum()) * int(cols.sum()), seed  # a rectangle
        assert torch.equal(mixed[1, 0] == 0, pasted), seed  # the same box in image 1
        kept = 1 - float(pasted.float().mean())
        assert float(targets[0, 0]) == pytest.approx(kept), seed
        assert float(targets[1, 1]) == pytest.approx(kept), seed


@pytest.mark.parametrize("option", ["mixup_alpha", "cutmix_alpha"])
def test_alpha_sets_how_far_images_are_mixed(option):
    """Beta(alpha, alpha): a small alpha leaves most images nearly whole (the weight an image
    keeps on its own class is near 0 or 1), alpha 1 draws the share uniformly, so that rarely
    happens. The alpha the user gives must reach torchvision's transform, not its default of 1.
    Measured over 200 seeded batches: 82% (MixUp) and 45% (CutMix, whose box is clipped at the
    border) nearly whole at alpha 0.05, 2% and 4% at alpha 1."""
    images = torch.stack([torch.zeros(1, 16, 16), torch.ones(1, 16, 16)])
    labels = torch.tensor([0, 1])
    nearly_whole = {}
    for alpha in (0.05, 1.0):
        count = 0
        for seed in range(200):
            torch.manual_seed(seed)
            _, targets = mix_batch(images, labels, 2, **{option: alpha})
            count += not 0.02 < float(targets[0, 0]) < 0.98
        nearly_whole[alpha] = count / 200
    assert nearly_whole[0.05] > 0.3 and nearly_whole[1.0] < 0.1, nearly_whole


def test_one_option_is_torchvisions_transform_draw_for_draw():
    """With one alpha set, mix_batch is torchvision's MixUp (or CutMix) itself: the same seed
    gives the same images and targets, and no extra random number is drawn to choose."""
    images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    for option, transform in (("mixup_alpha", v2.MixUp), ("cutmix_alpha", v2.CutMix)):
        torch.manual_seed(3)
        mixed, targets = mix_batch(images, labels, 3, **{option: 0.3})
        torch.manual_seed(3)
        expected_images, expected_targets = transform(alpha=0.3, num_classes=3)(images, labels)
        assert torch.equal(mixed, expected_images), option
        assert torch.equal(targets, expected_targets), option


def test_both_options_set_use_each_on_some_batches():
    """MixUp blends every pixel; CutMix copies pixels whole. With both alphas set, 40 seeded
    batches must show both kinds (RandomChoice picks one per batch)."""
    images = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    kinds = set()
    for seed in range(40):
        torch.manual_seed(seed)
        mixed, _ = mix_batch(images, torch.tensor([0, 1]), 2, mixup_alpha=1.0, cutmix_alpha=1.0)
        whole = bool(((mixed == 0) | (mixed == 1)).all())
        kinds.add("cutmix" if whole else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_hard_labels_keep_class_indices_and_take_the_heaviest_class():
    labels = torch.tensor([2, 0, 1])
    assert hard_labels(labels) is labels  # already class indices: unchanged
    assert hard_labels(torch.tensor([[0.2, 0.8], [0.6, 0.4]])).tolist() == [1, 0]


OPTIONS = {
    "mixup": ["--model.init_args.mixup_alpha=0.2"],
    "cutmix": ["--model.init_args.cutmix_alpha=1.0"],
    "trivialaugment": ["--data.augmentation=trivialaugment"],
    "randaugment": ["--data.augmentation=randaugment"],
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "images"
    return make_class_folders(root, {"a": 12, "b": 12}, size=(12, 12))


def trained_weights(loop: str, args: list[str]) -> tuple[dict, float]:
    """One epoch through ``loop``'s entry point: the trained weights and the final val/loss."""
    if loop == "lightning":
        cli = lightning_main(["fit", *args])
        weights = {k: v.detach().clone() for k, v in cli.model.state_dict().items()}
        return weights, float(cli.trainer.callback_metrics["val/loss"])
    result = manual_run(["fit", *args])
    assert len(result.history.epochs) == 1
    weights = {
        f"network.{k}": v for k, v in load_checkpoint(result.last_checkpoint)["model"].items()
    }
    return weights, float(result.history.epochs[0]["val/loss"])


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["lightning", "manual"])
def test_each_option_trains_one_epoch(loop, photos, tmp_path):
    def args(name: str, *extra: str) -> list[str]:
        return [
            "--config", CNN_CONFIG, f"--data.root={photos}", "--data.image_size=8",
            "--data.batch_size=8", "--model.init_args.widths=[8]", "--trainer.max_epochs=1",
            "--trainer.precision=32-true", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.deterministic=true",
            f"--trainer.logger.init_args.save_dir={tmp_path / name}", *extra,
        ]  # fmt: skip

    # The same seeded run without the option: an option that is really applied trains other
    # weights (an option silently ignored by the loop leaves them bit-identical).
    plain, _ = trained_weights(loop, args("plain"))
    for name, extra in OPTIONS.items():
        weights, val_loss = trained_weights(loop, args(name, *extra))
        assert math.isfinite(val_loss), name
        assert weights.keys() == plain.keys()
        assert any(not torch.equal(weights[k], plain[k]) for k in plain), f"{name} changed nothing"
