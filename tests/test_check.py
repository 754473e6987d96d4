"""Messy data: ``python -m project check``, skip_invalid, hostile CSV rows, bad files in training.

One folder holds every kind of trouble users bring (all generated here under tmp_path): a truncated
JPEG, a zero-byte PNG, a text file named .jpg, a PNG header claiming a 10^10-pixel image, a CMYK
JPEG, a 16-bit PNG ramp, an EXIF-rotated JPEG, a palette PNG with transparency, a hidden
.ipynb_checkpoints folder, a non-image file, a symlink loop and a symlink out of the tree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from project.data.check import main as check_main
from project.data.datasets import DataError, scan_csv
from project.data.images import load_image
from project.lit.cli import main as lightning_main
from project.lit.datamodule import ImageDataModule

from .helpers import (
    make_class_folders,
    only_line,
    png_header_claiming,
    quick_args,
    run_command,
    save_image,
)


def write_troubles(folder: Path) -> dict[str, Path]:
    """The trouble files in ``folder``; returns them by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = save_image(folder / "whole.jpg", size=(64, 64))
    files = {
        "truncated": folder / "truncated.jpg",
        "zero bytes": folder / "empty.png",
        "text as jpg": folder / "notes.jpg",
        "bomb header": folder / "bomb.png",
    }
    files["truncated"].write_bytes(whole.read_bytes()[:300])
    files["zero bytes"].write_bytes(b"")
    files["text as jpg"].write_text("not an image\n")
    files["bomb header"].write_bytes(png_header_claiming(100_000, 100_000))
    return files


def write_unusual_but_fine(folder: Path) -> None:
    Image.new("CMYK", (6, 5), (0, 255, 0, 0)).save(folder / "cmyk.jpg")
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(folder / "ramp16.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (4, 2), (255, 0, 0)).save(folder / "rotated.jpg", exif=exif)
    palette = Image.new("P", (3, 3))
    palette.putpalette([255, 255, 255, 10, 20, 30] + [0] * 762)
    palette.save(folder / "palette.png", transparency=0)


@pytest.fixture
def messy_root(tmp_path) -> Path:
    root = make_class_folders(tmp_path / "messy", {"cat": 4, "dog": 4})
    write_troubles(root / "cat")
    write_unusual_but_fine(root / "dog")
    save_image(root / "dog" / ".ipynb_checkpoints" / "copy.png")  # hidden: never a sample
    (root / "dog" / "README.txt").write_text("about the dogs\n")
    (root / "cat" / "loop").symlink_to(root / "cat", target_is_directory=True)
    outside = make_class_folders(tmp_path / "elsewhere", {"x": 1})
    (root / "dog" / "outside").symlink_to(outside, target_is_directory=True)
    return root


# ---------------------------------------------------------------------------- the data check


def test_check_reports_every_problem_and_note_and_fails(messy_root, capsys):
    status = check_main(["--data.root", str(messy_root)])
    report = capsys.readouterr().out
    assert status == 1
    for name in ("truncated.jpg", "empty.png", "notes.jpg", "bomb.png"):
        assert f"{messy_root / 'cat' / name}: " in report, name
    assert "decompression bomb" in report
    assert "problems (would stop training): 4" in report
    assert "hidden folder, skipped" in report and "README.txt: not an image file" in report
    assert "'CMYK': 1" in report and "'P': 1" in report and "I;16" in report
    assert "17 image files listed, 13 readable, 2 classes" in report
    assert "classes: cat: 5, dog: 8" in report  # dog: 4 + cmyk, ramp, rotated, palette
    assert "result: 4 problem(s)" in report


def test_check_passes_the_bundled_digits_through_the_real_entry_point(digits_root):
    result = run_command(
        [sys.executable, "-m", "project", "check", "--config", "configs/cnn.yaml",
         "--data.root", str(digits_root)]
    )  # fmt: skip
    assert "1797 image files listed, 1797 readable, 10 classes" in result.stdout
    assert "result: OK" in result.stdout


def test_check_lists_every_hostile_csv_row(tmp_path, capsys):
    root = make_class_folders(tmp_path / "images", {"a": 2, "b": 2})
    (tmp_path / "secret.png").write_bytes((root / "a" / "0.png").read_bytes())
    csv_file = root / "labels.csv"
    csv_file.write_text(
        "path,label\n"
        "a/0.png,a\n"
        "a/1.png,a\n"
        "b/0.png,b\n"
        "b/9.png,b\n"  # line 5: missing file
        "a/0.png,b\n"  # line 6: listed again
        "../secret.png,a\n"  # line 7: escapes the root
        "/etc/passwd,a\n"  # line 8: absolute
        ",b\n"  # line 9: empty path
    )
    status = check_main(["--data.root", str(root), "--data.csv_file", str(csv_file)])
    report = capsys.readouterr().out
    assert status == 1
    for line, words in (
        (5, "image file not found"),
        (6, "is listed again (first on line 2)"),
        (7, "points outside the image root"),
        (8, "absolute path"),
        (9, "empty path or label"),
    ):
        assert f"{csv_file}, line {line}: " in report and words in report, line
    # Training stops at the first problem found (the rows' shape is read first), untrained.
    with pytest.raises(DataError, match="line 9: empty path"):
        scan_csv(csv_file, root)


def test_paths_outside_the_root_need_the_explicit_option(tmp_path):
    root = make_class_folders(tmp_path / "images", {"a": 1, "b": 1})
    elsewhere = save_image(tmp_path / "shared" / "extra.png")
    save_image(tmp_path / "shared" / "more.png")
    csv_file = root / "labels.csv"
    csv_file.write_text(f"path,label\na/0.png,a\nb/0.png,b\n{elsewhere},b\n../shared/more.png,a\n")
    with pytest.raises(DataError, match="absolute path"):
        scan_csv(csv_file, root)
    samples, _ = scan_csv(csv_file, root, allow_outside_root=True)
    assert len(samples) == 4


def test_the_check_needs_an_existing_source(tmp_path, capsys):
    assert check_main(["--data.root", str(tmp_path / "nowhere")]) == 2
    assert f"data folder not found: {tmp_path / 'nowhere'}" in capsys.readouterr().err


# ---------------------------------------------------------------------------- skip_invalid


def test_skip_invalid_leaves_bad_files_out_once_with_one_warning(messy_root):
    with pytest.warns(UserWarning, match=r"left out 4 unreadable image file\(s\) of 17") as caught:
        data = ImageDataModule(
            root=str(messy_root), val_fraction=0.25, test_fraction=0.0, skip_invalid=True
        )
        data.setup("fit")
    assert len(caught) == 1
    assert "cat/bomb.png: refused" in str(caught[0].message)  # the first few are named
    kept = data._samples["train"] + data._samples["val"]
    assert len(kept) == 13 and all(load_image(path) is not None for path, _ in kept)


# ---------------------------------------------------------------------------- during training


def test_a_bad_file_met_in_a_worker_is_one_line_naming_file_and_index(
    digits_root, tmp_path, capsys
):
    root = make_class_folders(tmp_path / "images", {"a": 40, "b": 40})
    bad = root / "b" / "39.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated after the scan would have passed it
    args = [
        *quick_args(root, tmp_path / "logs"),
        "--data.cache_images=false",
        "--data.num_workers=1",
        "--data.test_fraction=0",
        "--data.mean=[0.5,0.5,0.5]",  # no statistics pass: the first read is the DataLoader's
        "--data.std=[0.2,0.2,0.2]",
    ]
    with pytest.raises(SystemExit) as stopped:
        lightning_main(["fit", *args])
    assert stopped.value.code == 2
    error = only_line(capsys.readouterr().err)
    assert error.startswith(f"error: {bad}: corrupt or truncated image")
    assert "[dataset index" in error
