"""Which pip extra each command needs, and the one line that says how to install it.

``pip install -e .`` installs what training needs (fit / validate / test / predict in both loops,
the data check, lr_find, the transfer proof). What happens after training has its own extra
(pyproject.toml), so a project started from the template carries only what it uses:

    pip install -e '.[deploy]'   export, quantize, prune (onnx, onnxruntime, torchao, torch-pruning)
    pip install -e '.[serve]'    serve (litserve, python-multipart, onnxruntime for --onnx)
    pip install -e '.[sweep]'    sweep (optuna)
    pip install -e '.[streaming]'  shards and --data.shards (litdata)
    pip install -e '.[dev]'      all of them, and the test tools (make install)

A command whose extra is missing stops before it starts, with one line and exit status 2:

    $ python -m project serve --ckpt_path CKPT
    error: python -m project serve needs litserve: pip install -e '.[serve]'
"""

from __future__ import annotations

import importlib.util
import sys

# command of ``python -m project`` -> (extra, the modules it imports from that extra)
COMMAND_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "export": ("deploy", ("onnx", "onnxscript", "onnxruntime")),
    "quantize": ("deploy", ("onnx", "onnxruntime", "torchao")),
    "prune": ("deploy", ("torch_pruning",)),
    "serve": ("serve", ("litserve", "multipart")),
    "sweep": ("sweep", ("optuna",)),
    "shards": ("streaming", ("litdata",)),
}


def missing_module(modules: tuple[str, ...]) -> str | None:
    """The first of ``modules`` that cannot be imported here (without importing it), or None."""
    for name in modules:
        if name in sys.modules:
            if sys.modules[name] is None:  # blocked, as tests hide a package
                return name
            continue
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def missing_extra_message(command: str) -> str | None:
    """One line naming the missing package and the install command, or None if all is there."""
    if command not in COMMAND_EXTRAS:
        return None
    extra, modules = COMMAND_EXTRAS[command]
    name = missing_module(modules)
    if name is None:
        return None
    return f"python -m project {command} needs {name}: pip install -e '.[{extra}]'"
