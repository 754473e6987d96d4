"""Tables in the docs generated from recorded results, so a figure has one source.

    make bench                                # every benchmark writes benchmarks/results/NAME.json
    python -m benchmarks.doc_tables record NAME [--keep-from TEXT] -- COMMAND ...
        runs COMMAND, prints its output and writes benchmarks/results/NAME.json: the command, the
        machine (benchmarks.common.machine()), the date and the output (from the first line that
        contains TEXT, when given)
    python -m benchmarks.doc_tables            # make docs: rewrite every marked table
    python -m benchmarks.doc_tables --check    # exit 1 naming each marked table that differs

A marked table in a Markdown file is everything between these two lines (tests/test_docs.py
fails when one differs from its result file):

    <!-- generated from benchmarks/results/NAME.json by make docs: edit the result, not this -->
    <!-- end generated -->
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARKED = re.compile(
    r"(<!-- generated from (benchmarks/results/[\w.-]+\.json) by make docs: edit the result, "
    r"not this -->\n)(.*?)(<!-- end generated -->)",
    re.S,
)


def render(result: dict) -> str:
    """The Markdown of one result: a code block, the command and where it ran on its first line."""
    where = f"{result['machine']}; {result['date']}"
    source = f"# {result['source']}\n" if result.get("source") else ""  # not measured by its write
    return f"```\n{result['command']}        # {where}\n{source}{result['output'].rstrip()}\n```\n"


def marked_tables(text: str) -> list[tuple[str, str]]:
    """(result file, current block) of every marked table in ``text``."""
    return [(match.group(2), match.group(3)) for match in MARKED.finditer(text)]


def regenerate(text: str) -> str:
    def fill(match: re.Match) -> str:
        result = json.loads((ROOT / match.group(2)).read_text(encoding="utf-8"))
        return match.group(1) + render(result) + match.group(4)

    return MARKED.sub(fill, text)


def doc_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed]


def write_result(name: str, command: str, output: str, source: str | None = None) -> Path:
    """benchmarks/results/NAME.json: the command, this machine, today's date and the output
    (``source``: where figures not measured by this write came from, e.g. a transcription)."""
    from benchmarks.common import machine

    result = {"command": command, "machine": machine(), "date": datetime.date.today().isoformat()}
    if source is not None:
        result["source"] = source
    result["output"] = output.rstrip() + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    partial = path.with_name(path.name + ".partial")  # a crash mid-write leaves the old result
    partial.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def record(name: str, command: list[str], keep_from: str | None) -> Path:
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    output = run.stdout
    if keep_from is not None:
        lines = output.splitlines()
        start = next(i for i, line in enumerate(lines) if keep_from in line)
        output = "\n".join(lines[start:])
    print(output)
    shown = " ".join(command)
    if command[:2] == [sys.executable, "-m"]:
        shown = "python " + " ".join(command[1:])
    return write_result(name, shown, output)


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if args[:1] == ["record"]:
        parser = argparse.ArgumentParser(prog="python -m benchmarks.doc_tables record")
        parser.add_argument("name")
        parser.add_argument("--keep-from")
        parser.add_argument("command", nargs=argparse.REMAINDER)
        options = parser.parse_args(args[1:])
        command = [sys.executable if w == "python" else w for w in options.command if w != "--"]
        print(f"wrote {record(options.name, command, options.keep_from)}")
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.doc_tables", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only say which tables differ")
    options = parser.parse_args(args)
    stale = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        new = regenerate(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not options.check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{'differs from its results' if options.check else 'rewrote'}: {path}")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
