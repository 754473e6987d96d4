"""One source for what both loops share: a new model needs no loop edit, errors end the same way,
and the plain-PyTorch modules load without Lightning.

- ``TinyRecipe`` below is a third recipe defined only here (``TinyClassifier`` its Lightning
  adapter, as project/lit/classifier.py's). Its model-specific behaviour (pretrained weights,
  freezing per epoch) reaches both loops through the recipe's hooks ``load_pretrained_weights``
  and ``prepare_epoch``; both loops train it to bit-identical weights. The manual loop takes the
  recipe's class path (it imports no LightningModule).
- A NaN loss exits with status 1 in both loops, with one line naming epoch and step.
(That the plain modules import no Lightning is tests/test_boundary.py's, over every module.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from project.core.recipe import ClassifierRecipe
from project.lit.classifier import ClassifierModule
from project.lit.cli import main as lightning_main
from project.manual.cli import main as manual_main
from project.manual.cli import run as manual_run
from project.runs.checkpoints import load_checkpoint, network_state

from .helpers import only_line

REPO = Path(__file__).resolve().parents[1]
CALLS: list[tuple[str, int | None]] = []  # (hook, epoch) in call order, per run


class TinyRecipe(ClassifierRecipe):
    """A linear model on the pixels whose "pretrained" first layer is frozen for epoch 0."""

    def __init__(self, num_classes: int = 10, image_size: int = 8, **kwargs):
        network = nn.Sequential(
            nn.Flatten(), nn.Linear(3 * image_size**2, 32), nn.ReLU(), nn.Linear(32, num_classes)
        )
        super().__init__(network=network, num_classes=num_classes, **kwargs)

    def load_pretrained_weights(self) -> None:
        CALLS.append(("load_pretrained_weights", None))
        with torch.no_grad():  # a known "pretrained" pattern, as a weights file would give
            first = self.network[1]
            first.weight.copy_(
                torch.linspace(-0.05, 0.05, first.weight.numel()).view_as(first.weight)
            )

    def prepare_epoch(self, epoch: int) -> str | None:
        CALLS.append(("prepare_epoch", epoch))
        frozen = epoch == 0
        for parameter in self.network[1].parameters():
            parameter.requires_grad = not frozen
        return f"epoch {epoch}: first layer {'frozen' if frozen else 'trainable'}"


class TinyClassifier(ClassifierModule):
    """TinyRecipe in Lightning (the adapter pattern of project/lit/classifier.py)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.use_recipe(TinyRecipe(**kwargs))


def tiny_args(digits_root: Path, log_dir: Path, *extra: str, model: str = "TinyClassifier"):
    return [
        "--config",
        str(REPO / "configs" / "cnn.yaml"),
        f"--model.class_path=tests.test_shared_steps.{model}",
        "--model.init_args.image_size=8",
        "--model.init_args.optimizer.init_args.lr=0.01",
        f"--data.root={digits_root}",
        "--data.image_size=8",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.max_epochs=2",
        "--trainer.precision=32-true",
        "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


@pytest.mark.slow
def test_a_third_model_trains_to_equal_weights_in_both_loops_without_a_loop_edit(
    digits_root, tmp_path
):
    args = tiny_args(digits_root, tmp_path / "logs")
    CALLS.clear()
    cli = lightning_main(["fit", *args])
    lightning_calls = list(CALLS)
    lightning_last = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"

    CALLS.clear()
    result = manual_run(["fit", *tiny_args(digits_root, tmp_path / "logs", model="TinyRecipe")])
    manual_calls = list(CALLS)

    # The hooks ran in both loops, in the same order: weights once, then every epoch.
    expected = [("load_pretrained_weights", None), ("prepare_epoch", 0), ("prepare_epoch", 1)]
    assert lightning_calls == manual_calls == expected
    lightning_weights = network_state(load_checkpoint(lightning_last))
    manual_weights = load_checkpoint(result.last_checkpoint)["model"]
    assert lightning_weights.keys() == manual_weights.keys()
    for key, value in lightning_weights.items():
        assert torch.equal(value, manual_weights[key]), key
    # The first layer was frozen for epoch 0 only: it moved away from the "pretrained" pattern
    # in epoch 1, so both hooks really shaped the training.
    pattern = torch.linspace(-0.05, 0.05, manual_weights["1.weight"].numel())
    assert not torch.equal(manual_weights["1.weight"].flatten(), pattern)


@pytest.mark.parametrize("entry", ["lightning", "manual"])
def test_a_nan_loss_exits_with_status_1_and_one_line_in_both_loops(
    entry, digits_root, tmp_path, capsys
):
    model = "TinyClassifier" if entry == "lightning" else "TinyRecipe"
    args = tiny_args(
        digits_root, tmp_path / "logs", "--model.init_args.optimizer.init_args.lr=1e30", model=model
    )
    args = [arg for arg in args if not arg.startswith("--trainer.max_epochs")]
    main = lightning_main if entry == "lightning" else manual_main
    with pytest.raises(SystemExit) as stopped:
        main(["fit", *args, "--trainer.max_epochs=3"])
    assert stopped.value.code == 1
    error = only_line(capsys.readouterr().err)
    assert error.startswith("error: ") and "loss is nan at epoch" in error, error
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing non-finite was saved
