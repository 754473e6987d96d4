"""Class imbalance (project/data/sampling.py, model.class_weights, the data check's ratio).

The training test writes a 20:1 folder of real PNG files (project/data/skewed.py: two classes that
overlap, as real ones do) and trains the same tiny config three times in each loop, same seed:
plain, with ``--data.sampler weighted`` and with ``--model.init_args.class_weights auto``. Either
option must raise the macro recall on the validation images over the plain run.
"""

from __future__ import annotations

import collections

import pytest
import torch
import torch.nn.functional as F

from project.core.loss import classification_loss
from project.data.check import main as check_main
from project.data.sampling import ClassBalancedSampler, imbalance_ratio, inverse_frequency_weights
from project.data.skewed import write_skewed_folder
from project.lit.cli import main as lightning_main
from project.manual.cli import run as manual_run
from project.runs.checkpoints import load_checkpoint

from .helpers import CNN_CONFIG, assert_same_tensors, only_line


def test_inverse_frequency_weights_balance_the_classes():
    weights = inverse_frequency_weights([900, 45, 0])
    assert weights.tolist() == pytest.approx([945 / (3 * 900), 945 / (3 * 45), 0.0])
    # Each class's total weight in the loss is then the same (the empty class aside).
    assert float(weights[0] * 900) == pytest.approx(float(weights[1] * 45))
    assert imbalance_ratio([900, 45]) == 20.0


def test_class_weights_weigh_each_image_by_its_class():
    torch.manual_seed(0)
    logits, labels = torch.randn(20, 3), torch.randint(0, 3, (20,))
    weights = torch.tensor([0.5, 2.0, 7.0])
    ours = classification_loss(logits, labels, 0.0, weights)
    assert float(ours) == pytest.approx(float(F.cross_entropy(logits, labels, weight=weights)))
    one_hot = F.one_hot(labels, 3).float()  # soft targets (MixUp) weigh the same way
    assert float(classification_loss(logits, one_hot, 0.0, weights)) == pytest.approx(float(ours))
    # With label smoothing, a confident right answer must not cost more than a wrong one that
    # names the heavy class (torch's weight= does that: its smoothing term is weighted too).
    right = classification_loss(torch.tensor([[6.0, 0, 0]]), torch.tensor([0]), 0.1, weights)
    wrong = classification_loss(torch.tensor([[0, 0, 6.0]]), torch.tensor([0]), 0.1, weights)
    assert float(right) < float(wrong)


def test_the_sampler_draws_every_class_about_equally_and_reproducibly():
    labels = [0] * 950 + [1] * 50
    sampler = ClassBalancedSampler(labels, seed=3)
    drawn = list(sampler)
    counts = collections.Counter(labels[i] for i in drawn)
    assert len(drawn) == len(labels)
    assert 0.4 < counts[1] / len(drawn) < 0.6  # 5% of the files, about half of the draws
    assert list(sampler) == drawn  # same epoch, same draw
    sampler.set_epoch(1)
    assert list(sampler) != drawn  # a new epoch draws anew


def test_under_ddp_each_process_keeps_its_share_of_one_common_draw():
    labels = [0] * 90 + [1] * 9 + [2] * 4
    whole = list(ClassBalancedSampler(labels, seed=7, num_replicas=1, rank=0))
    shares = [list(ClassBalancedSampler(labels, seed=7, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 52  # ceil(103 / 2): equal step counts
    interleaved = [index for pair in zip(*shares, strict=True) for index in pair]
    # The same sequence as one process draws (103 of it, then one more draw to even the shares).
    assert interleaved[: len(whole)] == whole


def test_check_reports_the_imbalance_and_suggests_the_options(tmp_path, capsys):
    write_skewed_folder(tmp_path / "skewed", common=60, ratio=20)
    assert check_main([f"--data.root={tmp_path / 'skewed'}"]) == 0  # python -m project check
    out = capsys.readouterr().out
    assert "classes: common: 60, rare: 3" in out
    assert "imbalance ratio (largest / smallest class): 20.0" in out
    assert "--data.sampler weighted" in out and "class_weights auto" in out


# ---------------------------------------------------------------------------- training


def skewed_args(root, log_dir) -> list[str]:
    """A tiny, fast config on the skewed folder (8 px, two small conv blocks, 6 epochs)."""
    return [
        "--config",
        CNN_CONFIG,
        f"--data.root={root}",
        "--data.image_size=8",
        "--data.augmentation=none",
        "--data.val_fraction=0.4",
        "--data.test_fraction=0.1",
        "--data.batch_size=32",
        "--model.init_args.widths=[8, 16]",
        "--model.init_args.label_smoothing=0",
        "--model.init_args.optimizer.init_args.lr=0.02",
        "--trainer.max_epochs=6",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


OPTIONS = {
    "plain": [],
    "weighted sampler": ["--data.sampler=weighted"],
    "class weights": ["--model.init_args.class_weights=auto"],
}


@pytest.fixture(scope="module")
def skewed_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("skewed") / "images"
    write_skewed_folder(root, common=300, ratio=20)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["lightning", "manual"])
def test_either_option_raises_macro_recall_over_the_plain_run(loop, skewed_root, tmp_path):
    recall = {}
    for name, extra in OPTIONS.items():
        args = [*skewed_args(skewed_root, tmp_path / "logs"), *extra]
        if loop == "lightning":
            metrics = lightning_main(["fit", *args]).trainer.callback_metrics
            recall[name] = float(metrics["val/recall_macro"])
        else:
            history = manual_run(["fit", *args]).history
            recall[name] = history.epochs[-1]["val/recall_macro"]
    # The plain run learns the 20:1 prior: the rare class is mostly missed.
    assert recall["plain"] < 0.7, recall
    assert recall["weighted sampler"] > recall["plain"] + 0.1, recall
    assert recall["class weights"] > recall["plain"] + 0.1, recall


@pytest.mark.slow
def test_the_weighted_sampler_draws_the_same_images_in_both_loops(skewed_root, tmp_path):
    """Bit-identical weights after 2 epochs: both loops draw the same indices in every epoch (the
    sampler is seeded by seed + epoch; Lightning and the manual loop each call set_epoch)."""
    args = [
        *skewed_args(skewed_root, tmp_path / "logs"),
        "--data.sampler=weighted",
        "--trainer.max_epochs=2",
        "--trainer.deterministic=true",
    ]
    lightning_weights = lightning_main(["fit", *args]).model.network.state_dict()
    manual_weights = load_checkpoint(manual_run(["fit", *args]).last_checkpoint)["model"]
    assert_same_tensors(lightning_weights, manual_weights)


def test_class_weights_of_the_wrong_length_are_a_one_line_error(skewed_root, tmp_path, capsys):
    args = [*skewed_args(skewed_root, tmp_path), "--model.init_args.class_weights=[1, 2, 3]"]
    with pytest.raises(SystemExit) as status:  # python -m project fit's main(), in-process
        lightning_main(["fit", *args])
    assert status.value.code == 2
    last = only_line(capsys.readouterr().err)
    assert last == "error: model.class_weights has 3 numbers for 2 classes"


def test_the_loss_weights_follow_the_training_split(skewed_root):
    from project.lit.classifier import CNNClassifier
    from project.lit.datamodule import ImageDataModule

    data = ImageDataModule(root=str(skewed_root), val_fraction=0.4, test_fraction=0.1)
    model = CNNClassifier(num_classes=2, class_weights="auto")
    model.recipe.use_class_counts(data.class_counts())  # Lightning: setup(); the manual loop too
    counts = data.class_counts()
    assert counts == [150, 7]  # 300 and 15, less 40% val and 10% test (rounded)
    assert model.class_weights.tolist() == pytest.approx([157 / 300, 157 / 14])
    assert torch.equal(model.class_weights, inverse_frequency_weights(counts))
