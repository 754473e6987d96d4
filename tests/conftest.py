"""Shared fixtures: real image files written under pytest's tmp_path, nothing downloaded.

Helpers that are not fixtures (quick_args, save_image, waits, ...) are in tests/helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from project.data.digits import write_digits


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """The bundled digits written once per test session as PNG class folders + labels.csv."""
    return write_digits(tmp_path_factory.mktemp("data") / "digits")
