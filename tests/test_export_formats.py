"""``python -m project export --format pt2``: a torch.export program and an AOTInductor package,
each checked against the checkpoint on its test split, with the checkpoint's metadata inside; and
the bad inputs of export (not a checkpoint, an unwritable output, an unknown ONNX Runtime
provider): one line, exit status 2, nothing written."""

from __future__ import annotations

import json
import re

import pytest
import torch

from project.deploy.export import main as export_main
from project.deploy.export import network_from_checkpoint
from project.deploy.pt2 import load_aoti, load_program
from project.runs.checkpoints import load_checkpoint


def printed_agreement(out: str, name: str) -> tuple[float, float]:
    match = re.search(rf"^{name} .*agreement ([\d.]+)% .*difference\| ([\d.e+-]+),", out, re.M)
    assert match, out
    return float(match.group(1)), float(match.group(2))


def test_pt2_program_predicts_as_the_checkpoint_and_carries_its_metadata(fitted, tmp_path, capsys):
    output = tmp_path / "model.pt2"
    args = ["--ckpt_path", str(fitted["best"]), "--format", "pt2", "--no_aoti"]
    assert export_main([*args, "--output", str(output)]) == 0
    out = capsys.readouterr().out
    agreement, difference = printed_agreement(out, "pt2")
    assert agreement == 100.0 and difference < 1e-4
    assert "AOTInductor package skipped: --no_aoti given" in out
    module, settings = load_program(output)
    stored = load_checkpoint(fitted["best"])["inference"]
    assert settings == {k: v for k, v in stored.items() if k != "sample"}  # no images inside
    network, _ = network_from_checkpoint(fitted["best"])
    images = torch.randn(5, 3, 16, 16)  # another batch size than the export's example (2)
    with torch.no_grad():
        assert (module(images) - network(images)).abs().max() < 1e-4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pt2"]  # no temporaries


@pytest.mark.slow
def test_aoti_package_predicts_as_the_checkpoint_and_carries_its_metadata(fitted, tmp_path, capsys):
    output = tmp_path / "model.pt2"
    assert export_main(["--ckpt_path", str(fitted["best"]), "--format", "pt2",
                        "--output", str(output)]) == 0  # fmt: skip
    agreement, _ = printed_agreement(capsys.readouterr().out, "aoti")
    assert agreement == 100.0
    package = load_aoti(tmp_path / "model.aoti.pt2")
    metadata = package.get_metadata()
    assert json.loads(metadata["class_names"]) == [str(digit) for digit in range(10)]
    assert int(metadata["image_size"]) == 16 and len(json.loads(metadata["std"])) == 3
    network, _ = network_from_checkpoint(fitted["best"])
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert (package(images) - network(images)).abs().max() < 1e-4


def test_onnx_export_prints_its_check_on_the_test_split(fitted, tmp_path, capsys):
    output = tmp_path / "model.onnx"
    assert export_main(["--ckpt_path", str(fitted["best"]), "--output", str(output)]) == 0
    agreement, difference = printed_agreement(capsys.readouterr().out, "onnx")
    assert agreement == 100.0 and difference < 1e-4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]  # no .data left


@pytest.mark.parametrize("case", ["not_a_checkpoint", "unwritable_output", "provider"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, fitted, tmp_path, capsys):
    checkpoint, output = fitted["best"], tmp_path / "out" / "model.onnx"
    extra = []
    if case == "not_a_checkpoint":
        checkpoint = tmp_path / "notes.ckpt"
        checkpoint.write_text("not a checkpoint")
    elif case == "unwritable_output":
        (tmp_path / "out").write_text("a file where the folder should be")
    else:
        extra = ["--provider", "NoSuchExecutionProvider"]
    status = export_main(["--ckpt_path", str(checkpoint), "--output", str(output), *extra])
    error = capsys.readouterr().err.strip()
    expected = {
        "not_a_checkpoint": "notes.ckpt: ",
        "unwritable_output": "--output",
        "provider": "--provider NoSuchExecutionProvider: not available",
    }[case]
    assert status == 2 and expected in error and len(error.splitlines()) == 1, error
    assert not output.parent.is_dir() or not any(output.parent.iterdir())  # not even a temporary
