"""Every lesson runs as a script and every assertion in it holds: a lesson cannot rot.

Each lessons/NN_*.py runs in its own interpreter from the repository root, exactly as a learner
runs it (``python lessons/04_minimal_loop.py``). The selected lessons start together, as many at a
time as there are cores, and each test waits for its own (the lessons are independent). One torch
thread per lesson: the lessons' tensors are small, and on a shared, busy machine two threads per
process waited on each other (lesson 4's training epoch: 28 s with 2 threads, 1.6 s with 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import run_command

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
SLOW = {"04_minimal_loop.py", "05_lightning.py", "06_debugging.py", "07_optimize.py"}  # seconds
# Lines a learner cannot act on, which the project keeps out of what it prints (Lightning's
# advert and a deprecation meant for Lightning: project/lit/quiet.py; onnxruntime's advice to
# pre-process a model before quantizing it: lesson 7 does, as project/deploy/onnx_int8.py does).
NOT_FOR_LEARNERS = (
    "Tip: For seamless cloud logging",
    "LeafSpec",
    "Please consider to run pre-processing before quantization",
)


def run_lesson(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop("LESSON_COMPILE", None)  # torch.compile takes tens of seconds: not in the suite
    # The one bound of every wait (tests/helpers.py); past it the lesson is killed with any
    # process it started, and the test fails with its output.
    return run_command([sys.executable, str(path.relative_to(ROOT))], env=env, check=False)


@pytest.fixture(scope="module")
def lesson_runs(request):
    """Start the lessons this session selected; yield {name: future of its completed run}."""
    selected = {
        item.callspec.params["lesson"]
        for item in request.session.items
        if Path(item.path) == Path(__file__)
        and getattr(item, "originalname", "") == "test_lesson_runs_and_every_assertion_holds"
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        yield {p.name: pool.submit(run_lesson, p) for p in LESSONS if p.name in selected}


def test_the_five_lessons_exist():
    names = [p.name for p in LESSONS]
    assert names[:5] == [
        "01_tensors.py",
        "02_autograd.py",
        "03_modules.py",
        "04_minimal_loop.py",
        "05_lightning.py",
    ]


@pytest.mark.parametrize(
    "lesson",
    [
        pytest.param(p.name, id=p.stem, marks=[pytest.mark.slow] if p.name in SLOW else [])
        for p in LESSONS
    ],
)
def test_lesson_runs_and_every_assertion_holds(lesson, lesson_runs):
    run = lesson_runs[lesson].result()
    assert run.returncode == 0, f"{lesson} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    number = int(lesson[:2])
    assert f"lesson {number}: every assertion held" in run.stdout
    printed = run.stdout + run.stderr
    assert not [line for line in NOT_FOR_LEARNERS if line in printed], printed[-4000:]


@pytest.mark.parametrize("lesson", [p.name for p in LESSONS], ids=[p.stem for p in LESSONS])
def test_lesson_opens_as_a_notebook(lesson):
    """Percent format: a markdown title cell first, code in `# %%` cells (VS Code, jupytext)."""
    text = (ROOT / "lessons" / lesson).read_text()
    assert text.startswith("# %% [markdown]\n# # Lesson ")
    assert text.count("\n# %%\n") >= 3
