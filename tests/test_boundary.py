"""The boundary between the plain-PyTorch layers and Lightning, enforced by folder, and no circles.

- Every module under a plain folder of project/ (``PLAIN_FOLDERS``) imports no Lightning: each is
  imported in a fresh interpreter, in turn, and the first that loads ``lightning`` fails the test
  by name. The rule is the folder, not a list of modules: a new file is covered the day it lands.
- Outside ``lit/`` (the Lightning twin), only the commands that start a Lightning run on purpose
  may load it, listed by folder (``LIGHTNING_COMMANDS``); everything else in deploy/ and sweep/ is
  plain too.
- No import circle among the modules of project/ (read from their import statements).
- ``python -c "import project.manual.loop"`` loads no Lightning module at all.
- The manual loop's list of Trainer arguments (project/manual/trainer_options.py) is Lightning's,
  so a Lightning release that adds or renames one fails here instead of in a user's config.
"""

from __future__ import annotations

import ast
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import project
from project.manual.trainer_options import TensorBoardLoggerOptions, trainer_options

from .helpers import REPO

PACKAGE = Path(project.__file__).parent
# Folders that import no Lightning, whatever modules they hold.
PLAIN_FOLDERS = ("core", "data", "models", "runs", "manual", "serve", "transfer")
# The Lightning twin: every module there may import Lightning.
LIGHTNING_FOLDER = "lit"
# Outside lit/: the commands that start a Lightning run on purpose, by folder. Each fine-tunes or
# fits through project/lit/cli.py; the rest of their folder is plain.
LIGHTNING_COMMANDS = {
    "deploy": ("prune",),  # fine-tunes the pruned network through LightningCLI
    "sweep": ("cli", "trial"),  # each trial a fit through LightningCLI
    "": ("classifier", "callbacks", "quickstart", "compare"),  # root: aliases and entry points
}

LIGHTNING_PACKAGES = ("lightning", "pytorch_lightning", "lightning_fabric")


def all_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(project.__path__, "project.")]


def folder_of(name: str) -> str:
    parts = name.split(".")[1:]
    if len(parts) == 1 and (REPO / "project" / parts[0]).is_dir():
        return parts[0]  # a folder's own __init__.py is in that folder
    return parts[0] if len(parts) > 1 else ""


def may_load_lightning(name: str) -> bool:
    folder = folder_of(name)
    if folder == LIGHTNING_FOLDER:
        return True
    return name.split(".")[-1] in LIGHTNING_COMMANDS.get(folder, ()) or name == "project.__main__"


def plain_modules() -> list[str]:
    return [name for name in all_modules() if not may_load_lightning(name)]


def test_every_folder_of_the_package_is_sorted_into_a_layer():
    folders = {folder_of(name) for name in all_modules()} - {""}
    unknown = folders - set(PLAIN_FOLDERS) - {LIGHTNING_FOLDER} - set(LIGHTNING_COMMANDS)
    assert not unknown, f"project/{sorted(unknown)[0]}/ is in no layer of tests/test_boundary.py"


def test_every_module_of_the_plain_layers_imports_no_lightning():
    names = plain_modules()
    for folder in (*PLAIN_FOLDERS, "deploy", "sweep"):
        assert any(folder_of(name) == folder for name in names), folder
    assert "project.manual.loop" in names and "project.core.loss" in names
    assert "project.deploy.export" in names and "project.serve.api" in names
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


def test_the_lightning_twin_is_where_lightning_is_imported():
    """Each module of lit/ imports Lightning or another module of lit/ (read from its source):
    the folder holds the adapters, not plain code that belongs in a plain folder."""
    for name in all_modules():
        if folder_of(name) != LIGHTNING_FOLDER or name.endswith(".__init__"):
            continue
        source = (PACKAGE / Path(*name.split(".")[1:])).with_suffix(".py")
        if not source.exists():
            continue  # the package's __init__
        text = source.read_text()
        uses = ("from lightning", "import lightning", "from project.lit.")
        assert any(use in text for use in uses), f"{name} imports no Lightning: not an adapter"


def imports_of(path: Path, name: str) -> set[str]:
    """The project modules that ``path`` imports at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("project"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = name.rsplit(".", node.level)[0]
            module = f"{base}.{node.module}" if node.module else base
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("project"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for info in pkgutil.walk_packages(project.__path__, "project."):
        relative = Path(*info.name.split(".")[1:])
        path = (
            PACKAGE / relative / "__init__.py"
            if info.ispkg
            else (PACKAGE / relative).with_suffix(".py")
        )
        modules[info.name] = path
    return {
        name: {other for other in imports_of(path, name) if other in modules and other != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return stack[stack.index(other) :] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert "project.core.errors" in graph["project.runs.checkpoints"]  # the graph is read
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_circle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


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
