"""The tree as README.md's "Layout" describes it, and the old class paths that still load.

- Every module under project/ (and every folder under configs/) is named in README's Layout block,
  so the Layout cannot go stale when a file is added or moved.
- The alias modules project/classifier.py and project/callbacks.py re-export the Lightning
  twin's classes: each old name *is* the class in project/lit/, so configs, run folders'
  config.yaml and checkpoints written before the move keep loading (the checkpoint itself:
  tests/test_checkpoints.py and tests/test_manual.py load tests/data/cnn_before_injection.ckpt).
"""

from __future__ import annotations

import re

import pytest

from .helpers import REPO

PACKAGE = REPO / "project"


def layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Layout\n", 1)[1]
    return section.split("```\n", 2)[1]


def named_in_layout(block: str) -> set[str]:
    """project/-relative paths named in the block: 'folder/' headings and the file names
    under them (indented two spaces deeper), 'a.py, b.py' lists included."""
    named, folder = set(), ""
    for line in block.splitlines():
        match = re.match(r"^( *)(\S.*?)(?:\s{2,}|$)", line)
        if not match or line.startswith(
            ("configs/", "tests/", "benchmarks/", "WORKSHOP", "lessons/")
        ):
            continue
        indent, names = len(match.group(1)), match.group(2)
        if indent == 0:  # project/ itself, and the repository's other top-level entries
            continue
        if indent == 2 and names.endswith("/"):
            folder = names
            named.add(folder)
            continue
        if indent == 2:
            folder = ""
        for name in re.split(r",\s*", names):
            named.add(folder + name.strip())
    return named


def test_every_module_and_folder_of_the_package_is_in_the_readme_layout():
    named = named_in_layout(layout_block())
    missing = []
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(PACKAGE).as_posix()
        if "__pycache__" in relative or path.name == "__init__.py":
            continue
        if path.is_dir():
            relative += "/"
            if relative not in named:
                missing.append(relative)
        elif path.suffix in (".py", ".html", ".md") and relative not in named:
            missing.append(relative)
    assert not missing, (
        f"README.md's Layout does not name project/{missing[0]} ({len(missing)} missing)"
    )


def test_every_config_folder_is_in_the_readme_layout():
    block = layout_block()
    configs_lines = block.split("configs/", 1)[1].split("\ntests/", 1)[0]
    for folder in sorted(p for p in (REPO / "configs").iterdir() if p.is_dir()):
        assert f"{folder.name}/" in configs_lines, (
            f"README.md's Layout does not name configs/{folder.name}/"
        )


def test_the_layout_reader_sees_a_missing_module():
    block = "project/\n  core/\n    loss.py   the loss\n  quickstart.py   make train\n"
    named = named_in_layout(block)
    assert named == {"core/", "core/loss.py", "quickstart.py"}


@pytest.mark.parametrize(
    ("alias", "names"),
    [
        (
            "project.classifier",
            ("ClassifierModule", "CNNClassifier", "ImageClassifier", "ResNetClassifier"),
        ),
        (
            "project.callbacks",
            (
                "CheckpointOnInterrupt",
                "EpochTimer",
                "HyperparametersWithMetrics",
                "PredictionWriter",
                "ThrottledProgressBar",
                "ValidationFigures",
            ),
        ),
    ],
)
def test_each_old_class_path_is_the_class_in_the_lightning_twin(alias, names):
    import importlib

    old = importlib.import_module(alias)
    new = importlib.import_module(alias.replace("project.", "project.lit."))
    for name in names:
        assert getattr(old, name) is getattr(new, name), f"{alias}.{name}"
    # re-exports only: nothing defined in the alias module itself
    defined = [
        name
        for name, value in vars(old).items()
        if getattr(value, "__module__", None) == alias and not name.startswith("__")
    ]
    assert defined == []


def test_the_manual_loop_reads_old_and_new_class_paths_as_the_same_recipe():
    from project.core.recipe import CNNRecipe
    from project.manual.settings import lightning_class_path, plain_class_paths

    for module in ("project.classifier", "project.lit.classifier"):
        plain = plain_class_paths({"class_path": f"{module}.CNNClassifier"})
        assert plain == {"class_path": f"{CNNRecipe.__module__}.CNNRecipe"}
    assert lightning_class_path(f"{CNNRecipe.__module__}.CNNRecipe") == (
        "project.lit.classifier.CNNClassifier"
    )
    # another module's class of that name is not ours
    assert plain_class_paths("my_package.CNNClassifier") == "my_package.CNNClassifier"


def test_the_manual_loops_fit_reads_in_one_screen():
    """project/manual/loop.py's fit() stays <= 80 lines (issue 33): its steps are functions of
    their own (fit_loaders, checkpoint_callbacks, resume_or_start, validate)."""
    import inspect

    from project.manual import loop

    lines = inspect.getsource(loop.fit).splitlines()
    assert len(lines) <= 80, f"fit() is {len(lines)} lines: move a step into a function of its own"
