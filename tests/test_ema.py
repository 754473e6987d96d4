"""EMA of the weights (configs/presets/ema.yaml: Lightning's EMAWeightAveraging callback).

The best checkpoint holds the averaged weights, which differ from the trained ones, and evaluating
that checkpoint gives exactly the val/acc it was chosen by. The manual loop refuses the option
with a one-line error naming it."""

from __future__ import annotations

import pytest
import torch

from project.lit.cli import main as lightning_main
from project.manual.cli import main as manual_main
from project.runs.checkpoints import load_checkpoint

from .helpers import CNN_CONFIG, CONFIGS, make_class_folders, only_line

EMA = str(CONFIGS / "presets" / "ema.yaml")


def args_for(root, log_dir) -> list[str]:
    return [
        "--config", CNN_CONFIG, "--config", EMA, f"--data.root={root}", "--data.image_size=8",
        "--data.batch_size=8", "--data.augmentation=none", "--model.init_args.widths=[8]",
        "--trainer.max_epochs=2", "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]  # fmt: skip


@pytest.fixture
def images(tmp_path):
    return make_class_folders(tmp_path / "images", {"a": 16, "b": 16}, size=(8, 8))


@pytest.mark.slow
def test_the_best_checkpoint_holds_and_evaluates_the_averaged_weights(images, tmp_path):
    cli = lightning_main(["fit", *args_for(images, tmp_path / "logs")])
    best = cli.trainer.checkpoint_callback.best_model_path
    checkpoint = load_checkpoint(best)
    averaged, trained = checkpoint["state_dict"], checkpoint["current_model_state"]
    different = [k for k in averaged if k.startswith("network.") and "weight" in k]
    assert any(not torch.equal(averaged[k], trained[k]) for k in different)
    validated = lightning_main(
        ["validate", *args_for(images, tmp_path / "logs"), f"--ckpt_path={best}"]
    ).trainer.callback_metrics["val/acc"]
    chosen_by = cli.trainer.checkpoint_callback.best_model_score
    assert float(validated) == pytest.approx(float(chosen_by))


def test_the_manual_loop_refuses_ema_with_its_name(images, tmp_path, capsys):
    with pytest.raises(SystemExit) as status:
        manual_main(["fit", *args_for(images, tmp_path / "logs")])
    assert status.value.code == 2
    error = only_line(capsys.readouterr().err)
    assert "EMAWeightAveraging" in error and "not implemented by the manual loop" in error
