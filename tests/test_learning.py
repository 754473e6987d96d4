"""The default config really learns: at least 98% test accuracy on the bundled digits."""

from __future__ import annotations

import pytest

from project.lit.cli import main

from .helpers import CNN_CONFIG


@pytest.mark.slow
def test_default_cnn_config_reaches_98_percent(digits_root, tmp_path):
    cli = main(
        [
            "fit",
            "--config",
            CNN_CONFIG,
            f"--data.root={digits_root}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]
    )
    results = cli.trainer.test(
        cli.model, datamodule=cli.datamodule, ckpt_path="best", weights_only=True, verbose=False
    )
    assert results[0]["test/acc"] >= 0.98
