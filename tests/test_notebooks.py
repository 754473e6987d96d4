"""``make notebooks``: the lessons and exercises convert to Jupyter notebooks, and one runs.

The test converts with the same command as the Makefile target (jupytext, the kernel named
"python3"), into a temporary folder, then executes lesson 1's notebook with nbclient from the
repository root, as Jupyter would: every cell runs and the lesson's last line is printed.
jupyter_client starts the "python3" kernel with the interpreter running this test (a kernelspec
whose command is ``python`` means "this Python"), so the notebook imports this checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(ROOT.glob("lessons/[0-9][0-9]_*.py")) + sorted(
    ROOT.glob("exercises/[0-9][0-9]_*.py")
)


def convert(folder: Path) -> list[Path]:
    """The Makefile's command on copies of the scripts in ``folder``; the notebooks written."""
    copies = []
    for source in SOURCES:
        copy = folder / source.parent.name / source.name
        copy.parent.mkdir(exist_ok=True)
        copies.append(Path(shutil.copy(source, copy)))
    command = [sys.executable, "-m", "jupytext", "--quiet", "--set-kernel", "python3"]
    subprocess.run([*command, "--to", "ipynb", *map(str, copies)], check=True, timeout=120)
    return [copy.with_suffix(".ipynb") for copy in copies]


def test_every_lesson_and_exercise_converts_and_lesson_1_runs_as_a_notebook(tmp_path):
    notebooks = convert(tmp_path)
    assert len(notebooks) >= 11 and all(path.exists() for path in notebooks)
    for notebook, source in zip(notebooks, SOURCES, strict=True):
        cells = nbformat.read(notebook, as_version=4).cells
        if source.parent.name == "lessons":  # percent format: one cell per "# %%" marker
            markers = [line for line in source.read_text().splitlines() if line.startswith("# %%")]
            assert len(cells) == len(markers), notebook.name

    lesson = nbformat.read(tmp_path / "lessons" / "01_tensors.ipynb", as_version=4)
    assert lesson.metadata.kernelspec.name == "python3"
    client = NotebookClient(lesson, timeout=300, resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on a failure
    printed = "".join(
        output.get("text", "")
        for cell in lesson.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "lesson 1: every assertion held" in printed
