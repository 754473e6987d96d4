"""project/data/split_file.py function by function: the file's format, its hash, and the errors
that name what changed, checked in-process with exact texts.

tests/test_splits.py runs the recorded split through both loops' commands; these pin each
function's contract, so that ``make mutation`` sees a change within seconds. Run alone:
``.venv/bin/python -m pytest tests/test_split_file.py``
"""

from __future__ import annotations

from pathlib import Path

import pytest

from project.core.errors import InputError
from project.data.split_file import (
    SplitFileError,
    apply_split_file,
    read_split_file,
    split_hash,
    split_rows,
    write_split_file,
)

CLASSES = ["cat", "dog"]


def samples(root: Path, *names: str) -> list[tuple[Path, int]]:
    """(path, label) pairs under root: "cat/1.png" is labelled cat."""
    return [(root / name, CLASSES.index(name.split("/")[0])) for name in names]


# ----------------------------------------------------------------------- rows and their hash


def test_rows_list_train_then_val_then_test_with_paths_relative_to_the_root(tmp_path):
    by_split = {
        "test": samples(tmp_path, "dog/9.png"),
        "train": samples(tmp_path, "cat/1.png", "dog/2.png"),
        "val": samples(tmp_path, "cat/3.png"),
    }
    assert split_rows(by_split, tmp_path, CLASSES) == [
        ("train", "cat/1.png", "cat"),
        ("train", "dog/2.png", "dog"),
        ("val", "cat/3.png", "cat"),
        ("test", "dog/9.png", "dog"),
    ]


def test_a_file_outside_the_root_keeps_its_absolute_path(tmp_path):
    outside = tmp_path / "elsewhere" / "cat.png"
    rows = split_rows({"train": [(outside, 0)]}, tmp_path / "root", CLASSES)
    assert rows == [("train", outside.resolve().as_posix(), "cat")]


def test_the_hash_is_stable_across_versions_and_row_order():
    # Checkpoints store this digest, and a reused split is compared by it: a change of its format
    # would make every saved split record look changed. Pinned: the SHA-256 of the sorted rows,
    # fields joined by "," and rows by "\n".
    rows = [("val", "dog/2.png", "dog"), ("train", "cat/1.png", "cat")]
    assert split_hash(rows) == {
        "sha256": "68a4b58706227146f3887d789b54b757d7092335f6049dc0c23207368a93f8df",
        "files": 2,
    }
    assert split_hash(rows[::-1]) == split_hash(rows)


def test_any_changed_row_changes_the_hash():
    rows = [("train", "cat/1.png", "cat"), ("val", "dog/2.png", "dog")]
    moved = [("val", "cat/1.png", "cat"), ("val", "dog/2.png", "dog")]
    assert split_hash(rows)["sha256"] != split_hash(moved)["sha256"]
    assert split_hash(rows[:1]) != split_hash(rows)


# ------------------------------------------------------------------------- writing and reading


def test_the_file_round_trips_any_file_name(tmp_path):
    rows = [
        ("train", "cat/with, comma.png", "cat"),
        ("val", 'dog/"quoted".png', "dog"),
        ("test", "dog/line\rbreak.png", "dog"),  # legal on POSIX; newline="" keeps it
    ]
    path = write_split_file(tmp_path / "new" / "run", rows)
    assert path == tmp_path / "new" / "run" / "splits.csv"
    assert path.read_bytes().startswith(b"split,path,label\r\n")
    assert read_split_file(path) == rows


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "splits.csv"
    path.write_text("split,path,label\n\ntrain,cat/1.png,cat\n\n")
    assert read_split_file(path) == [("train", "cat/1.png", "cat")]


def test_a_missing_split_file_is_named(tmp_path):
    with pytest.raises(SplitFileError) as caught:
        read_split_file(tmp_path / "nowhere.csv")
    assert str(caught.value) == f"data.split_file {tmp_path / 'nowhere.csv'}: no such file"
    assert isinstance(caught.value, InputError)  # printed as one line, exit status 2


@pytest.mark.parametrize("text", ["", "path,split,label\n", "split,path\ntrain,a.png\n"])
def test_a_file_without_the_header_is_not_a_split_file(text, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(SplitFileError) as caught:
        read_split_file(path)
    assert str(caught.value) == f"{path}: not a split file (header must be split,path,label)"


@pytest.mark.parametrize(
    "bad_row, shown",
    [
        ("holdout,cat/1.png,cat", "('holdout', 'cat/1.png', 'cat')"),
        ("train,cat/1.png", "('train', 'cat/1.png')"),
        ("val,cat/1.png,cat,extra", "('val', 'cat/1.png', 'cat', 'extra')"),
    ],
)
def test_a_bad_row_is_quoted(bad_row, shown, tmp_path):
    path = tmp_path / "splits.csv"
    path.write_text(f"split,path,label\ntrain,dog/2.png,dog\n{bad_row}\ntest,x,\n")
    with pytest.raises(SplitFileError) as caught:
        read_split_file(path)
    assert str(caught.value) == f"{path}: rows must be train|val|test,path,label; e.g. {shown}"


# ----------------------------------------------------------------- reusing a recorded split


@pytest.fixture
def recorded(tmp_path) -> Path:
    rows = [
        ("train", "cat/1.png", "cat"),
        ("train", "dog/2.png", "dog"),
        ("val", "cat/3.png", "cat"),
        ("test", "dog/4.png", "dog"),
    ]
    return write_split_file(tmp_path / "run", rows)


def test_the_recorded_split_wins_over_the_current_one(recorded, tmp_path):
    # today's seeded split put every file in train: the file regroups them as recorded
    current = {"train": samples(tmp_path, "dog/4.png", "cat/3.png", "dog/2.png", "cat/1.png")}
    assert apply_split_file(recorded, current, tmp_path, CLASSES) == {
        "train": samples(tmp_path, "cat/1.png", "dog/2.png"),
        "val": samples(tmp_path, "cat/3.png"),
        "test": samples(tmp_path, "dog/4.png"),
    }


def test_an_empty_test_split_is_left_out_and_an_empty_val_split_kept(tmp_path):
    path = write_split_file(tmp_path, [("train", "cat/1.png", "cat")])
    current = {"train": samples(tmp_path, "cat/1.png")}
    assert apply_split_file(path, current, tmp_path, CLASSES) == {
        "train": samples(tmp_path, "cat/1.png"),
        "val": [],
    }


def test_every_kind_of_change_is_named_in_one_message(recorded, tmp_path):
    current = {
        "train": samples(tmp_path, "cat/1.png", "cat/5.png"),  # added
        "val": [(tmp_path / "cat/3.png", 1)],  # now labelled dog
    }  # dog/2.png and dog/4.png: missing
    with pytest.raises(SplitFileError) as caught:
        apply_split_file(recorded, current, tmp_path, CLASSES)
    assert str(caught.value) == (
        f"data.split_file {recorded}: the data changed since this split was saved: "
        "1 file(s) added: cat/5.png; "
        "2 file(s) missing: dog/2.png, dog/4.png; "
        "1 file(s) changed class: cat/3.png (cat -> dog)"
    )


def test_only_the_kinds_that_changed_are_named(recorded, tmp_path):
    current = {"train": samples(tmp_path, "cat/1.png", "dog/2.png", "cat/3.png")}
    with pytest.raises(SplitFileError) as caught:
        apply_split_file(recorded, current, tmp_path, CLASSES)
    assert str(caught.value).endswith("was saved: 1 file(s) missing: dog/4.png")


@pytest.mark.parametrize(
    "added, named",
    [
        (3, "3 file(s) added: cat/a0.png, cat/a1.png, cat/a2.png"),
        (5, "5 file(s) added: cat/a0.png, cat/a1.png, cat/a2.png and 2 more"),
        (4, "4 file(s) added: cat/a0.png, cat/a1.png, cat/a2.png and 1 more"),
    ],
)
def test_at_most_three_files_are_quoted_per_kind_of_change(added, named, recorded, tmp_path):
    names = ["cat/1.png", "dog/2.png", "cat/3.png", "dog/4.png"]
    names += [f"cat/a{i}.png" for i in reversed(range(added))]  # quoted sorted
    with pytest.raises(SplitFileError) as caught:
        apply_split_file(recorded, {"train": samples(tmp_path, *names)}, tmp_path, CLASSES)
    assert str(caught.value).endswith(f"was saved: {named}")
