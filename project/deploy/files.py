"""Output files of export and quantize: refused early when they cannot be written, and written
atomically (a temporary file in the same folder, then ``os.replace``), as checkpoints are
(project/runs/checkpoints.py ``save_atomic``), so a failure never leaves a half-written model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from project.core.errors import InputError


class OutputError(InputError):
    """An output path that cannot be written."""


def check_writable(path: str | Path, option: str = "--output") -> Path:
    """``path`` if a file can be created beside it, else one line naming the option and why.
    Checked before any work, so a bad path costs nothing (and leaves nothing)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder, not a file name")
    for folder in path.parents:  # a file where a folder should be: say which
        if folder.exists():
            if not folder.is_dir():
                raise OutputError(f"{option} {path}: {folder} is a file, not a folder")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OutputError(f"{option} {path}: cannot be written ({error.strerror})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` only on success."""
    path = Path(path)
    # The suffix kept last: some writers insist on it (AOTInductor wants ``.pt2``).
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
