"""configs/presets/overfit.yaml, the first test of a new model, runs in both loops.

Lightning's ``overfit_batches: 1`` trains on the first training batch only, unshuffled; the manual
loop (project/manual/) implements the same semantics. Both must drive that batch's training
accuracy to ~100%: a loop that cannot is broken.
"""

from __future__ import annotations

import pytest
import torch

from project.manual.cli import run as manual_run
from project.manual.optimization import sequential
from project.manual.settings import build_data_and_model, loop_settings, parse

from .helpers import CNN_CONFIG, CONFIGS

OVERFIT = str(CONFIGS / "presets" / "overfit.yaml")


def overfit_args(digits_root, log_dir) -> list[str]:
    return [
        "--config",
        CNN_CONFIG,
        "--config",
        OVERFIT,
        f"--data.root={digits_root}",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


def test_the_manual_loop_reads_overfit_batches_as_lightning_does(digits_root, tmp_path):
    """Both limits become overfit_batches, and the training loader repeats its first batch."""
    config = parse(["fit", *overfit_args(digits_root, tmp_path), "--trainer.limit_val_batches=5"])
    settings = loop_settings(config)
    assert settings.overfit_batches == 1
    assert settings.limit_train_batches == settings.limit_val_batches == 1  # overfit wins
    data, _ = build_data_and_model(config)
    data.prepare_data()
    data.setup("fit")
    shuffled = data.train_dataloader()
    first = [next(iter(shuffled))[1] for _ in range(2)]
    assert not torch.equal(*first)  # the training loader shuffles every epoch ...
    same = sequential(shuffled)
    first = [next(iter(same))[1] for _ in range(2)]
    assert torch.equal(*first)  # ... its sequential twin gives the same first batch every epoch
    assert (same.batch_size, same.drop_last) == (shuffled.batch_size, shuffled.drop_last)


@pytest.mark.slow
def test_the_overfit_preset_memorizes_one_batch_step_for_step_the_same_in_both_loops(
    digits_root, tmp_path
):
    """One run of each loop: Lightning warns that it turned the shuffle off, both take one step
    an epoch on the same batch (equal losses, bit for bit, under deterministic algorithms) and
    end at exactly 100% of it (with the shuffle left on, the manual loop ended at 98.4%)."""
    from lightning.pytorch.callbacks import Callback

    from project.lit.cli import main  # Lightning: imported only by tests that train

    class StepLosses(Callback):
        def __init__(self):
            self.losses = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(outputs["loss"].item())

    args = [*overfit_args(digits_root, tmp_path), "--trainer.deterministic=true"]
    cli = main(args, run=False)
    recorder = StepLosses()
    cli.trainer.callbacks.append(recorder)
    with pytest.warns(UserWarning, match="turning off the train dataloader shuffling"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    trainer = cli.trainer
    assert trainer.num_training_batches == 1 and trainer.num_val_batches == [1]
    assert trainer.global_step == trainer.current_epoch == 15  # one step an epoch, no stop
    assert trainer.callback_metrics["train/acc"].item() == 1.0

    manual = manual_run(["fit", *args])
    epochs = manual.history.epochs
    assert len(epochs) == 15 and manual.history.step_losses == recorder.losses
    assert epochs[-1]["train/acc"] == 1.0, epochs[-1]
    assert epochs[0]["train/acc"] < 0.5  # it learned the batch; it did not start there
