"""A first run with nothing to ignore: ``fit`` prints neither Lightning's litlogger advert nor the
``_pytree`` deprecation warning (project/lit/quiet.py), and the filters go when upstream does."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import warnings

from project.lit import quiet

from .helpers import CNN_CONFIG, REPO


def test_a_fit_prints_neither_the_advert_nor_the_deprecation(digits_root, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "project", "fit", "--config", CNN_CONFIG,
         f"--data.root={digits_root}", f"--trainer.logger.init_args.save_dir={tmp_path}",
         "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
         "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "litlogger" not in output and "Lightning Experiments platform" not in output
    assert "LeafSpec" not in output and "_pytree" not in output
    assert "precision: auto" in output  # what a learner can act on is still printed


def test_lightning_still_prints_the_advert_else_remove_the_filter():
    from lightning.pytorch.trainer.connectors.logger_connector import logger_connector

    source = inspect.getsource(logger_connector)
    assert quiet.ADVERT_START in source, (
        "Lightning no longer prints the litlogger advert: remove DropAdvert (project/lit/quiet.py)"
    )


def test_lightning_still_triggers_the_pytree_deprecation_else_remove_the_filter():
    from lightning.pytorch.utilities import _pytree

    assert "LeafSpec()" in inspect.getsource(_pytree), (
        "Lightning no longer builds LeafSpec(): remove the _pytree filter from project/lit/quiet.py"
    )
    from torch.utils._pytree import LeafSpec

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LeafSpec()
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert any(re.search(quiet.PYTREE_MESSAGE, m) for m in messages), (
        "torch no longer warns about LeafSpec: remove the _pytree filter from project/lit/quiet.py"
    )
