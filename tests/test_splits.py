"""Recorded splits (project/data/split_file.py): every fit saves splits.csv in its run folder and
the split's hash in its checkpoints, in both loops; --data.split_file reuses it exactly; a changed
folder with a reused split is a one-line error (exit status 2) naming what changed."""

from __future__ import annotations

import csv

import pytest
import torch

from project.data.split_file import SplitFileError, split_hash
from project.lit.cli import main as lightning_main
from project.lit.datamodule import ImageDataModule
from project.manual.cli import main as manual_main
from project.manual.cli import run as manual_run
from project.runs.checkpoints import load_checkpoint

from .helpers import CNN_CONFIG, make_class_folders, only_line


def tiny_args(root, log_dir, *extra) -> list[str]:
    return [
        "--config",
        CNN_CONFIG,
        f"--data.root={root}",
        "--data.image_size=8",
        "--data.augmentation=none",
        "--model.init_args.widths=[8]",
        "--trainer.max_epochs=1",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        *extra,
    ]


def read_rows(path) -> list[tuple]:
    with open(path, newline="") as file:
        return [tuple(row) for row in csv.reader(file)][1:]


@pytest.fixture
def folder(tmp_path):
    return make_class_folders(tmp_path / "images", {"cat": 20, "dog": 20}, size=(8, 8))


def test_a_reused_split_regroups_the_files_and_names_what_changed(folder, tmp_path):
    data = ImageDataModule(root=str(folder), val_fraction=0.2, test_fraction=0.2)
    saved = data.write_split_file(tmp_path)
    rows = read_rows(saved)
    assert len(rows) == 40 and {row[0] for row in rows} == {"train", "val", "test"}
    assert split_hash(rows) == data.split_record()
    # Another seed would split differently; the file wins.
    reused = ImageDataModule(root=str(folder), split_seed=7, split_file=str(saved))
    assert reused.split_record() == data.split_record()
    (folder / "dog" / "3.png").unlink()
    (folder / "cat" / "5.png").rename(folder / "dog" / "cat5.png")
    with pytest.raises(SplitFileError) as error:
        ImageDataModule(root=str(folder), split_file=str(saved)).class_names  # noqa: B018
    message = str(error.value)
    assert "dog/3.png" in message and "missing" in message
    assert "dog/cat5.png" in message and "added" in message


@pytest.mark.slow
def test_both_loops_record_the_split_and_reuse_it(folder, tmp_path):
    cli = lightning_main(["fit", *tiny_args(folder, tmp_path / "logs")])
    run = tmp_path / "logs" / "cnn" / "version_0"
    rows = read_rows(run / "splits.csv")
    assert len(rows) == 40
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["data_split"] == split_hash(rows)
    assert cli.datamodule.split_record() == split_hash(rows)
    # The manual loop, told to reuse that split under another split seed: the same files.
    manual = manual_run(
        ["fit", *tiny_args(folder, tmp_path / "logs", "--data.split_seed=5",
                           f"--data.split_file={run / 'splits.csv'}")]
    )  # fmt: skip
    assert read_rows(manual.log_dir / "splits.csv") == rows
    manual_checkpoint = torch.load(manual.last_checkpoint, weights_only=True)
    assert manual_checkpoint["data_split"] == checkpoint["data_split"]


@pytest.mark.parametrize("entry", ["lightning", "manual"])
def test_a_changed_folder_with_a_reused_split_is_a_one_line_error(entry, folder, tmp_path, capsys):
    ImageDataModule(root=str(folder)).write_split_file(tmp_path)
    (folder / "cat" / "new.png").write_bytes((folder / "cat" / "0.png").read_bytes())
    args = tiny_args(folder, tmp_path / "logs", f"--data.split_file={tmp_path / 'splits.csv'}")
    with pytest.raises(SystemExit) as exit_status:  # the entry points' own main(), in-process
        (lightning_main if entry == "lightning" else manual_main)(["fit", *args])
    assert exit_status.value.code == 2
    last = only_line(capsys.readouterr().err)
    assert last.startswith("error: data.split_file") and "1 file(s) added: cat/new.png" in last
