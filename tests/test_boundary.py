"""The boundary between the plain-PyTorch core and Lightning, enforced over every module.

- Every module of project/ imports no Lightning, except the Lightning adapters listed in
  ``LIGHTNING_SIDE`` (project/core/__init__.py names them): each is imported in a fresh
  interpreter, in turn, and the first that loads ``lightning`` fails the test by name.
- ``python -c "import project.manual.loop"`` loads no Lightning module at all.
- The manual loop's list of Trainer arguments (project/manual/trainer_options.py) is Lightning's,
  so a Lightning release that adds or renames one fails here instead of in a user's config.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import project
from project.manual.trainer_options import TensorBoardLoggerOptions, trainer_options

from .helpers import REPO

# The Lightning adapters and the commands built on them; everything else is plain PyTorch.
LIGHTNING_SIDE = {
    "project.callbacks",
    "project.classifier",
    "project.cli",
    "project.data.datamodule",
    "project.ddp_unfreeze",
    "project.export",  # rebuilds the LightningModule a checkpoint names
    "project.lr_find",
    "project.prune",  # fine-tunes through LightningCLI
    "project.sweep.cli",  # each trial a fit through LightningCLI
    "project.sweep.trial",
    "project.quantize",  # rebuilds the checkpoint's network through project.export
}

LIGHTNING_PACKAGES = ("lightning", "pytorch_lightning", "lightning_fabric")


def plain_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(project.__path__, "project.")]
    return [name for name in names if name not in LIGHTNING_SIDE]


def test_every_module_outside_the_lightning_adapters_imports_no_lightning():
    names = plain_modules()
    assert "project.manual.loop" in names and "project.core.recipe" in names
    assert "project.data.pipeline" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"    loaded = [m for m in sys.modules if m.split('.')[0] in {LIGHTNING_PACKAGES!r}]\n"
        "    if loaded:\n"
        "        print(f'{name} imports {loaded[0]}'); sys.exit(1)\n"
        "print('plain:', len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_the_adapters_do_import_lightning():
    """The list above is not stale: each adapter imports Lightning, or another adapter (read
    from its source: a fresh interpreter per module would cost seconds each)."""
    for name in sorted(LIGHTNING_SIDE):
        source = inspect.getsource(importlib.import_module(name))
        uses = (
            "from lightning",
            "import lightning",
            *(f"from {other} import" for other in LIGHTNING_SIDE),
        )
        assert any(use in source for use in uses), f"{name} imports no Lightning: not an adapter"


def test_importing_the_manual_loop_loads_no_lightning_module():
    code = (
        "import project.manual.loop, project.manual.cli, sys; print([m for m in sys.modules if "
        "m.split('.')[0] in ('lightning', 'pytorch_lightning')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_manual_trainer_options_are_lightnings_trainer_arguments():
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import TensorBoardLogger

    ours = list(inspect.signature(trainer_options).parameters)
    lightnings = [name for name in inspect.signature(Trainer.__init__).parameters if name != "self"]
    assert ours == lightnings
    tensorboard = [
        name
        for name, p in inspect.signature(TensorBoardLogger.__init__).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    assert list(inspect.signature(TensorBoardLoggerOptions.__init__).parameters)[1:] == tensorboard
