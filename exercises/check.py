"""Check an exercise: one line per check, naming the mistake it found and where to look.

    python -m exercises.check 1                  # your attempt: exercises/01_dataset.py
    python -m exercises.check 1 --solution       # the reference: exercises/solutions/01_dataset.py
    python -m exercises.check 2 --file my.py     # any file
    make exercise N=1                            # the same as the first line

Exit status 0 when every check passes, 1 when any fails. A check that needs an earlier one
(``@needs`` in its checker) is skipped with one line while that one fails: exercise 4's real
fine-tune never runs on an attempt that has already failed. A failure with the same message as one
above says "same error as above" instead of repeating it. Exercise N is found by its two-digit
prefix: ``exercises/NN_*.py`` is the exercise, ``exercises/checks/check_NN_*.py`` its checker and
``exercises/solutions/NN_*.py`` the solution, so a new exercise needs no change here.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from exercises.checks import Mistake, explain, load_exercise, plural

EXERCISES = Path(__file__).resolve().parent
SKIPPED = "skipped: fix the failing check above first"
SAME = "same error as above"


@dataclass
class Result:
    title: str
    message: str | None  # None: the check passed
    note: str | None = None  # what a passing check found worth saying (e.g. which formula)
    warnings: list[str] = field(default_factory=list)  # what the learner's code warned, once each
    skipped: bool = False  # not run: a check it needs failed (the message says so)

    @property
    def ok(self) -> bool:
        return self.message is None

    def line(self) -> str:
        if self.skipped:
            return f"  skip  {self.title}: {self.message}"
        if not self.ok:
            return f"  FAIL  {self.title}: {self.message}"
        return f"  ok    {self.title}" + (f" ({self.note})" if self.note else "")


def exercise_numbers() -> list[int]:
    """Every N with both an exercise file and a checker."""
    numbers = []
    for checker in sorted((EXERCISES / "checks").glob("check_[0-9][0-9]_*.py")):
        number = int(checker.name[6:8])
        if list(EXERCISES.glob(f"{number:02d}_*.py")):
            numbers.append(number)
    return numbers


def _one(folder: Path, pattern: str) -> Path:
    matches = sorted(folder.glob(pattern))
    if len(matches) != 1:
        raise SystemExit(f"error: expected one file {folder / pattern}, found {len(matches)}")
    return matches[0]


def exercise_file(number: int) -> Path:
    return _one(EXERCISES, f"{number:02d}_*.py")


def solution_file(number: int) -> Path:
    return _one(EXERCISES / "solutions", f"{number:02d}_*.py")


def checker(number: int) -> ModuleType:
    path = _one(EXERCISES / "checks", f"check_{number:02d}_*.py")
    return importlib.import_module(f"exercises.checks.{path.stem}")


def title(check: Callable) -> str:
    doc = (check.__doc__ or check.__name__).strip()
    return doc.splitlines()[0]


def place(error: BaseException, path: Path) -> str:
    """The innermost frame of the traceback in the learner's file, as 'at file:line, in f'."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).resolve() == path
    ]
    if not frames:
        return ""
    frame = frames[-1]
    return f"at {path.name}:{frame.lineno}, in {frame.name}"


def where(error: BaseException, path: Path) -> str:
    """' (at file:line, in f)', or '' when the error did not pass through the learner's file."""
    at = place(error, path)
    return f" ({at})" if at else ""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message without terminal colour codes, at most ``limit``
    characters."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_check(check: Callable[[ModuleType], None], module: ModuleType) -> Result:
    """Run one check: a Mistake is the learner's mistake, a TODO is work not done yet, anything
    else is a crash in the learner's code, reported with its place."""
    path = Path(module.__file__).resolve()
    try:
        note = check(module)
    except Mistake as mistake:
        return Result(title(check), str(mistake))
    except Exception as error:  # the learner's code crashed (or is not written): what and where
        known = explain(error)  # a PyTorch error that a known mistake causes: name the mistake
        if isinstance(error, NotImplementedError) and known is None:  # the exercise's TODO
            return Result(title(check), f"not written yet: {error}{where(error, path)}")
        if known:  # the explanation replaces PyTorch's own text; the error's name and place stay
            at = place(error, path)
            return Result(title(check), f"{known} ({type(error).__name__}{' ' + at if at else ''})")
        crash = f"{type(error).__name__}: {first_line(error)}{where(error, path)}"
        return Result(title(check), f"crashed: {crash}")
    return Result(title(check), None, note if isinstance(note, str) else None)


def blocked(check: Callable, failed: set[str]) -> bool:
    """Whether ``check`` needs a check that failed (or was skipped) above it (``@needs``)."""
    needed = getattr(check, "needs", None)
    if needed is None:
        return False
    return bool(failed) if not needed else bool(failed & set(needed))


def run_checks(number: int, path: str | Path) -> list[Result]:
    """Load ``path`` and run exercise ``number``'s checks on it."""
    return list(iter_checks(number, path))


def iter_checks(number: int, path: str | Path, names: list[str] | None = None):
    """Each check's Result as it finishes (``names``: only the checks of these names)."""
    checks = [c for c in checker(number).CHECKS if names is None or c.__name__ in names]
    try:
        module = load_exercise(path)
    except Exception as error:  # a syntax error or a failing import: every check fails with it
        message = f"the file does not import: {type(error).__name__}: {first_line(error)}"
        for index, check in enumerate(checks):
            yield Result(title(check), message if index == 0 else SAME)
        return
    # The checks work on tiny tensors, where one thread is fastest and does not wait on threads
    # that other busy processes hold up (a training epoch of check 2: 0.5 s with 2 threads on a
    # busy 2-core machine, 0.008 s with 1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    failed: set[str] = set()  # checks that failed or were skipped
    told: set[str] = set()  # failure messages already shown in full
    try:
        for check in checks:
            if blocked(check, failed):
                failed.add(check.__name__)
                yield Result(title(check), SKIPPED, skipped=True)
                continue
            # Warnings are caught, not printed in between: a check that needs one judges it
            # itself; the others are shown once, after the line of the check that raised them.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = run_check(check, module)
            result.warnings = list(dict.fromkeys(warned(w) for w in caught))
            if not result.ok:
                failed.add(check.__name__)
                if result.message in told:  # one crash, one line: the first one says it all
                    result.message = SAME
                told.add(result.message)
            yield result
    finally:
        torch.set_num_threads(threads)


def warned(warning: warnings.WarningMessage) -> str:
    """One line for a warning: its category, first line and place."""
    return (
        f"{warning.category.__name__}: {first_line(warning.message)} "
        f"(at {Path(warning.filename).name}:{warning.lineno})"
    )


class LineStart:
    """stdout that knows whether its last character ended a line: the learner's code may print
    without a newline (a progress bar, ``end=""``), and the runner's next line must not run onto
    it; nor may the shell's or make's next line run onto the runner's last one."""

    def __init__(self, stream):
        self.stream, self.at_line_start = stream, True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self.stream.write(text)

    def line(self, text: str) -> None:
        """Print ``text`` on a line of its own."""
        if not self.at_line_start:
            self.write("\n")
        self.write(text + "\n")
        self.flush()

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # isatty, encoding, fileno...: the real stream's
        return getattr(self.stream, name)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exercises.check", description=__doc__)
    parser.add_argument("number", type=int, help="the exercise number, e.g. 1")
    parser.add_argument("--solution", action="store_true", help="check the reference solution")
    parser.add_argument("--file", help="check this file instead of exercises/NN_*.py")
    options = parser.parse_args(args)
    if options.number not in exercise_numbers():
        found = ", ".join(str(n) for n in exercise_numbers())
        parser.error(f"no exercise {options.number} (exercises here: {found})")
    if options.file:
        path = Path(options.file)
    elif options.solution:
        path = solution_file(options.number)
    else:
        path = exercise_file(options.number)
    out = LineStart(sys.stdout)
    real_stdout, sys.stdout = sys.stdout, out  # the learner's prints go through it too
    try:
        out.line(f"exercise {options.number}: checking {path}")
        results, shown = [], set()
        for result in iter_checks(options.number, path):  # printed as they finish
            out.line(result.line())
            for warning in result.warnings:
                if warning not in shown:
                    shown.add(warning)
                    out.line(f"          your code warned: {warning}")
            results.append(result)
        failed = sum(not result.ok and not result.skipped for result in results)
        skipped = sum(result.skipped for result in results)
        if failed or skipped:
            also = f", {skipped} skipped" if skipped else ""
            out.line(
                f"{failed} of {plural(len(results), 'check')} failed{also}. "
                "Fix the first one and run this again."
            )
            return 1
        out.line(f"all {plural(len(results), 'check')} passed.")
        return 0
    finally:
        sys.stdout = real_stdout


if __name__ == "__main__":
    raise SystemExit(main())
