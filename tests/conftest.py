"""Shared fixtures: real image files written under pytest's tmp_path, nothing downloaded.

Helpers that are not fixtures (quick_args, save_image, waits, ...) are in tests/helpers.py.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest

# `make test` runs the suite in workers (pytest -n auto, pytest-xdist). The workers share the
# cores as the ranks of one DDP run do, so each gets its share of CPU threads, set here before
# anything imports the project (whose CPU thread rule leaves a user's OMP_NUM_THREADS alone) or
# torch; the processes a test starts inherit it. One worker, or plain pytest: nothing changes.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    _CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ["OMP_NUM_THREADS"] = str(max(1, (_CPUS or 1) // _WORKERS))

from project.data.digits import write_digits  # noqa: E402  (after the threads are set)

from .helpers import quick_args, transfer_target_args, write_glyph_target  # noqa: E402

# Seconds each test file took in the last run (pytest's cache folder, .pytest_cache/): the
# order the workers take the files in. Longest first, so that no worker starts a long file while
# the other has run out of work; without a record (a fresh clone) the files with the most tests
# that train for real (marked slow) go first.
FILE_SECONDS = "project/file_seconds"
_seconds: Counter = Counter()


def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n`` (make test): the longest files first. A stable sort: each file's
    tests keep their order."""
    if _WORKERS > 1:
        cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
        known = cache.get(FILE_SECONDS, {}) if cache else {}
        slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
        items.sort(key=lambda item: (-known.get(item.nodeid.split("::")[0], 0), -slow[item.path]))


def pytest_runtest_logreport(report):
    _seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_sessionfinish(session):
    """The whole suite's run (not a worker's share, not a run of a few tests) records its
    files' seconds."""
    config = session.config
    whole_run = session.testscollected >= 1000 and hasattr(config, "cache")
    if hasattr(config, "workerinput") or not whole_run:
        return
    config.cache.set(FILE_SECONDS, {**config.cache.get(FILE_SECONDS, {}), **_seconds})


@pytest.fixture(autouse=True)
def torch_settings_restored():
    """What a test's in-process run sets for the whole process is given back after it: a sweep
    worker or a server run in-process calls torch.set_num_threads, a deterministic run turns on
    deterministic algorithms. Left set, a later test's in-process fit ran with 2 threads while
    the subprocesses it is compared with ran with 1, and their weights differed (make test with
    2 workers, 2026-12-05)."""
    torch = sys.modules.get("torch")  # not imported by this test's file: nothing to restore
    if torch is None:
        yield
        return
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """The bundled digits written once per test session as PNG class folders + labels.csv."""
    return write_digits(tmp_path_factory.mktemp("data") / "digits")


@pytest.fixture(scope="session")
def fitted(digits_root, tmp_path_factory) -> dict:
    """One real 2-epoch fit of configs/cnn.yaml on the digits, shared by every test that needs a
    trained checkpoint (its best and last checkpoints, its log folder, its arguments). Read it,
    never write into it: other test files see the same files."""
    from project.lit.cli import main  # Lightning: imported only by tests that train

    log_dir = tmp_path_factory.mktemp("logs")
    args = quick_args(digits_root, log_dir)
    cli = main(["fit", *args])
    callback = cli.trainer.checkpoint_callback
    return {
        "args": args,
        "log_dir": Path(cli.trainer.log_dir),
        "best": Path(callback.best_model_path),
        "last": Path(callback.dirpath) / "last.ckpt",
        "epochs": cli.trainer.current_epoch,
        "best_score": callback.best_model_score.item(),
    }


@pytest.fixture(scope="session")
def glyph_target(tmp_path_factory) -> Path:
    """A small glyph target, train/ and val/ only (tests/helpers.py write_glyph_target)."""
    return write_glyph_target(tmp_path_factory.mktemp("data") / "glyph_target")


@pytest.fixture(scope="session")
def transfer_fitted(glyph_target, tmp_path_factory) -> dict:
    """One real 2-epoch fit of the workshop's transfer target (feature cache on, backbone
    frozen, validation only at epoch 20, so none ran) on the small glyph target, shared by the
    deploy tests: its last.ckpt is the only checkpoint it has. Read it, never write into it."""
    from project.lit.cli import main

    log_dir = tmp_path_factory.mktemp("transfer_logs")
    args = transfer_target_args(glyph_target, log_dir)
    cli = main(["fit", *args])
    return {
        "args": args,
        "log_dir": Path(cli.trainer.log_dir),
        "last": Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt",
    }
