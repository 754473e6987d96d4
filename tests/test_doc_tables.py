"""benchmarks/doc_tables.py: record a command's output, render it, rewrite the marked tables."""

from __future__ import annotations

import json
import sys

import pytest

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


def test_make_bench_records_what_each_benchmark_printed(tmp_path, monkeypatch, capsys):
    from benchmarks import run_all

    monkeypatch.setattr(doc_tables, "RESULTS", tmp_path)

    def benchmark():
        print("### 1. a table\nrow 1")

    path = run_all.run_and_record("demo", benchmark)
    assert "row 1" in capsys.readouterr().out  # still shown while it runs
    result = json.loads(path.read_text())
    assert result["output"] == "### 1. a table\nrow 1\n"
    assert result["command"] == "python -m benchmarks.demo" and result["machine"]
    assert "source" not in result  # measured by this run, not transcribed


def test_a_failing_benchmark_keeps_the_last_result(tmp_path, monkeypatch):
    from benchmarks import run_all

    monkeypatch.setattr(doc_tables, "RESULTS", tmp_path)
    kept = doc_tables.write_result("demo", "python -m benchmarks.demo", "old table")

    def broken():
        print("half a table")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        run_all.run_and_record("demo", broken)
    assert json.loads(kept.read_text())["output"] == "old table\n"
