"""``python -m project quantize``: static int8 calibrated on the checkpoint's training split,
evaluated against fp32 on its test split (ONNX Runtime QDQ; PT2E compiled, marked slow); and its
bad inputs: a checkpoint of another model, more calibration images than the split has, an unknown
ONNX Runtime provider, an unwritable output: one line, exit status 2, nothing written."""

from __future__ import annotations

import json
import re

import pytest
import torch

from project.deploy.pt2 import load_program
from project.deploy.quantize import main as quantize_main

ROW = re.compile(
    r"^(?P<backend>\w+) +fp32 acc (?P<fp32>[\d.]+) +int8 acc (?P<int8>[\d.]+) +"
    r"top-1 agreement (?P<agreement>[\d.]+)% .* fp32 (?P<fp32_mb>[\d.]+) MB +"
    r"int8 (?P<int8_mb>[\d.]+) MB",
    re.M,
)


def quantized(fitted, tmp_path, capsys, backend: str, output: str) -> dict:
    args = ["--ckpt_path", str(fitted["best"]), "--backend", backend, "--calibration", "32"]
    assert quantize_main([*args, "--output", str(tmp_path / output)]) == 0
    out = capsys.readouterr().out
    rows = {m["backend"]: {k: float(v) for k, v in m.groupdict().items() if k != "backend"}
            for m in ROW.finditer(out)}  # fmt: skip
    assert backend in rows, out
    return rows[backend]


def test_onnxruntime_int8_is_smaller_and_agrees_with_fp32(fitted, tmp_path, capsys):
    import onnxruntime

    row = quantized(fitted, tmp_path, capsys, "onnxruntime", "model-int8.onnx")
    assert row["agreement"] >= 95 and abs(row["int8"] - row["fp32"]) <= 0.03
    assert row["int8_mb"] < 0.4 * row["fp32_mb"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model-int8.onnx"))
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["class_names"]) == [str(digit) for digit in range(10)]
    assert int(metadata["image_size"]) == 16 and len(json.loads(metadata["mean"])) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["model-int8.onnx"]  # no temporaries


@pytest.mark.slow
def test_pt2e_int8_compiled_agrees_with_fp32(fitted, tmp_path, capsys):
    row = quantized(fitted, tmp_path, capsys, "pt2e", "model-int8.pt2")
    assert row["agreement"] >= 95 and abs(row["int8"] - row["fp32"]) <= 0.03
    assert row["int8_mb"] < row["fp32_mb"]
    module, settings = load_program(tmp_path / "model-int8.pt2")
    assert settings["class_names"] == [str(digit) for digit in range(10)]
    assert module(torch.randn(3, 3, 16, 16)).shape == (3, 10)


def another_models_checkpoint(fitted, tmp_path):
    """The fitted checkpoint with the hyperparameters of another CNN (other widths)."""
    checkpoint = torch.load(fitted["best"], weights_only=True)
    checkpoint["hyper_parameters"]["widths"] = [8, 16, 32]
    torch.save(checkpoint, tmp_path / "other.ckpt")
    return tmp_path / "other.ckpt"


@pytest.mark.parametrize("case", ["other_model", "calibration", "provider", "unwritable"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, fitted, tmp_path, capsys):
    checkpoint, output = fitted["best"], tmp_path / "out" / "model-int8.onnx"
    extra = {"calibration": ["--calibration", "100000"],
             "provider": ["--provider", "NoSuchExecutionProvider"]}.get(case, [])  # fmt: skip
    if case == "other_model":
        checkpoint = another_models_checkpoint(fitted, tmp_path)
    if case == "unwritable":
        (tmp_path / "out").write_text("a file where the folder should be")
    args = ["--ckpt_path", str(checkpoint), "--output", str(output), "--backend", "onnxruntime"]
    status = quantize_main([*args, *extra])
    error = capsys.readouterr().err.strip().splitlines()
    expected = {
        "other_model": "other.ckpt: does not fit this model",
        "calibration": "--calibration 100000: the train split of",
        "provider": "--provider NoSuchExecutionProvider: not available",
        "unwritable": f"--output {output}: {output.parent} is a file, not a folder",
    }[case]
    assert status == 2 and len(error) == 1 and expected in error[0], error
    # Nothing in the output's folder (check_writable may have made it): no file, no temporary.
    assert not output.parent.is_dir() or not any(output.parent.iterdir())
