"""benchmarks/doc_tables.py: record a command's output, render it, rewrite the marked tables."""

from __future__ import annotations

import json
import sys

from benchmarks import doc_tables

MARK = (
    "<!-- generated from benchmarks/results/demo.json by make docs: edit the result, not this -->\n"
)


def test_record_writes_the_command_machine_date_and_the_output_from_a_line(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_tables, "RESULTS", tmp_path)
    script = "print('chatter'); print('table head'); print('row 1')"
    path = doc_tables.record("demo", [sys.executable, "-c", script], keep_from="table")
    result = json.loads(path.read_text())
    assert result["output"] == "table head\nrow 1\n"
    assert result["command"].startswith(sys.executable) and result["machine"] and result["date"]


def test_regenerate_rewrites_only_what_is_between_the_markers(tmp_path, monkeypatch):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    result = {"command": "python -m x", "machine": "m", "date": "d", "output": "a 1\n"}
    (tmp_path / "benchmarks/results/demo.json").write_text(json.dumps(result))
    monkeypatch.setattr(doc_tables, "ROOT", tmp_path)
    text = f"before\n{MARK}```\nstale\n```\n<!-- end generated -->\nafter\n"
    new = doc_tables.regenerate(text)
    block = "```\npython -m x        # m; d\na 1\n```\n"
    assert new == f"before\n{MARK}{block}<!-- end generated -->\nafter\n"
    assert doc_tables.regenerate(new) == new  # a second run changes nothing
    assert doc_tables.marked_tables(new) == [
        ("benchmarks/results/demo.json", doc_tables.render(result))
    ]
