"""What every exercise checker shares: the ``Mistake`` a check raises, and the exercise loader.

A checker is a module ``exercises/checks/check_NN_<name>.py`` that defines ``CHECKS``: a list of
functions, each taking the learner's module (loaded from a file by ``load_exercise``) and raising
``Mistake("what is wrong: what to do, and where")`` when it finds a mistake. The first line of each
check's docstring is its title in the runner's output. Optional module attributes:

    SLOW = True        the checker trains for real (tests mark it slow)
    MUTANTS = [...]    (old, new, expected words): broken copies of the solution that a check
                       must catch with a message containing the expected words (tests run them)
    REQUIRES_FILES = {check name: (paths)}: a check that needs files made on request (e.g.
                       ``make challenge-data``); tests run it where they exist, never on mutants

Run a checker with ``python -m exercises.check N`` (or ``make exercise N=1``).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

_counter = itertools.count()


class Mistake(Exception):
    """A mistake the checker found in the learner's code; the message says what and where."""


def load_exercise(path: str | Path) -> ModuleType:
    """Import a Python file as a module (exercise files start with a digit, so no plain import).

    Each call loads the file afresh under a unique name, so a learner's edit is always seen and
    two versions of one exercise (the attempt and the solution) never share state.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"exercise file not found: {path}")
    name = f"exercise_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs: dataclasses and DataLoader workers look modules up by name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def require(condition: bool, message: str) -> None:
    """Raise ``Mistake(message)`` unless ``condition`` holds."""
    if not condition:
        raise Mistake(message)
