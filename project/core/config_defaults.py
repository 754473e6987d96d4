"""The config every model shares, configs/defaults.yaml, found from any working directory.

    python -m project fit --config configs/cnn.yaml --print_config   # defaults + cnn.yaml, merged

Both entry points read configs/defaults.yaml before any ``--config``: project/lit/cli.py passes it
to LightningCLI (``parser_kwargs``), project/manual/settings.py to its parser, both as
jsonargparse's ``default_config_files``. The path is taken from this package's location (the
repository root, where ``pip install -e .`` leaves it), not from the working directory, so ``cd
elsewhere && python -m project ...`` reads the same file. Plain Python, no Lightning import.
"""

from __future__ import annotations

import glob
from pathlib import Path

from project.core.errors import InputError

DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "configs" / "defaults.yaml"


def default_config_files() -> list[str]:
    """``[configs/defaults.yaml]`` for jsonargparse, which silently skips a missing file: without
    it a run would train with no checkpoints, so its absence is an error here."""
    if not DEFAULTS_FILE.is_file():
        raise InputError(
            f"{DEFAULTS_FILE} not found: the shared config defaults live in the repository's "
            f"configs/ folder (install with pip install -e . from a clone)"
        )
    return [glob.escape(str(DEFAULTS_FILE))]  # jsonargparse reads each entry as a glob pattern
