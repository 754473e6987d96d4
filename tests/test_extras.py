"""The pip extras: ``pip install -e .`` trains; each command after training names its extra.

- pyproject.toml's core dependencies hold none of the extras' packages.
- With every extra's package hidden (``sys.modules[name] = None``, so importing it fails as if it
  were not installed), every module outside deploy/, serve/ and sweep/ imports, and a fit runs in
  both loops: training needs nothing more than the core install.
- Each command whose extra is hidden stops with one line naming the package and the
  ``pip install -e '.[extra]'`` that brings it, exit status 2, before it imports anything heavy.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib

from project.core.extras import COMMAND_EXTRAS

from .helpers import CNN_CONFIG, REPO

EXTRA_PACKAGES = {
    "deploy": ("onnx", "onnxscript", "onnxruntime", "torchao", "torch_pruning"),
    "serve": ("litserve", "multipart"),
    "sweep": ("optuna",),
    "streaming": ("litdata",),
}
HIDDEN = sorted({name for names in EXTRA_PACKAGES.values() for name in names})


def hide(names) -> str:
    """Python source that makes importing each of ``names`` fail, as if not installed."""
    return "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in names)


def run_python(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_the_core_dependencies_hold_none_of_the_extras():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower().replace("_", "-")
    for extra in EXTRA_PACKAGES:
        assert extra in project["optional-dependencies"], extra
        for requirement in project["optional-dependencies"][extra]:
            name = requirement.split(">")[0].split("=")[0].split("[")[0].strip().lower()
            assert name not in core, f"{name} ([{extra}]) is a core dependency"
    assert any(
        "[deploy,serve,sweep,streaming]" in r for r in project["optional-dependencies"]["dev"]
    )


@pytest.mark.parametrize("command", sorted(COMMAND_EXTRAS))
def test_a_command_whose_extra_is_missing_says_which_pip_install_brings_it(command):
    extra, modules = COMMAND_EXTRAS[command]
    code = hide([modules[-1]]) + (
        f"sys.argv = ['python -m project', {command!r}, '--help']\n"
        "from project.__main__ import run\n"
        "run()\n"
    )
    result = run_python(code, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: python -m project {command} needs {modules[-1]}: pip install -e '.[{extra}]'"
    ]


def test_with_every_extra_hidden_the_training_modules_import_and_both_loops_fit(
    digits_root, tmp_path
):
    """What ``pip install -e .`` alone must run: every plain and Lightning module outside the
    after-training folders imports, and a one-batch fit runs in each loop."""
    code = hide(HIDDEN) + (
        "import importlib, pkgutil, project\n"
        "skip = ('project.deploy', 'project.serve', 'project.sweep')\n"
        "for m in pkgutil.walk_packages(project.__path__, 'project.'):\n"
        "    if not m.name.startswith(skip):\n"
        "        importlib.import_module(m.name)\n"
        "from project.lit.cli import main\n"
        "from project.manual.cli import run\n"
        f"args = ['--config', {CNN_CONFIG!r}, '--data.root={digits_root}',\n"
        "        '--trainer.max_epochs=1', '--trainer.limit_train_batches=2',\n"
        "        '--trainer.limit_val_batches=1', '--trainer.precision=32-true',\n"
        "        '--trainer.enable_progress_bar=false', '--trainer.enable_model_summary=false',\n"
        f"        '--trainer.logger.init_args.save_dir={tmp_path}']\n"
        "main(['fit', *args])\n"
        "run(['fit', *args])\n"
        "print('trained without the extras')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained without the extras" in result.stdout
    assert sorted(p.name for p in tmp_path.glob("cnn/*version_*")) == [
        "manual_version_0",
        "version_0",
    ]
