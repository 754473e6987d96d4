"""project/data/digits.py: the bundled digits become real PNG files, once, even under a race."""

from __future__ import annotations

import csv
import multiprocessing

from PIL import Image

from project.data.digits import write_digits


def test_writes_pngs_in_class_folders_and_a_csv(digits_root):
    pngs = sorted(digits_root.glob("*/*.png"))
    assert len(pngs) == 1797
    assert sorted(p.name for p in digits_root.iterdir() if p.is_dir()) == [
        str(d) for d in range(10)
    ]
    with Image.open(pngs[0]) as image:
        assert image.size == (8, 8) and image.mode == "L"
    with open(digits_root / "labels.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1797 and rows[0]["path"].split("/")[0] == rows[0]["label"]


def test_is_idempotent(digits_root):
    before = (digits_root / "labels.csv").stat().st_mtime_ns
    assert write_digits(digits_root) == digits_root
    assert (digits_root / "labels.csv").stat().st_mtime_ns == before


def test_racing_processes_leave_one_complete_copy(tmp_path):
    target = tmp_path / "digits"
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        pool.map(write_digits, [target] * 3)
    assert len(list(target.glob("*/*.png"))) == 1797
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]  # no staging folders left
