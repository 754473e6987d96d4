"""Deploying the workshop's transfer model (issue 34): configs/resnet18.yaml +
configs/transfer/target.yaml (feature cache on, backbone frozen) fitted on a small glyph target
with train/ and val/ only (tests/conftest.py ``transfer_fitted``: 2 epochs, 16 px, so its only
checkpoint is last.ckpt). export, quantize and prune run from the checkpoint alone (the data moved
away: the validation images it stores), say what they checked on, leave out what only training
uses, and refuse bad input in one line.

    .venv/bin/python -m pytest tests/test_deploy_transfer.py -q
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from project.deploy.checkpoint_data import evaluation_images, stored_sample
from project.deploy.export import main as export_main
from project.deploy.export import network_from_checkpoint
from project.deploy.prune import main as prune_main
from project.deploy.pt2 import export_program
from project.deploy.quantize import main as quantize_main
from project.models.transfer import TransferNetwork
from project.runs.checkpoints import load_checkpoint

from .helpers import data_moved_away, run_command, save_image

pytestmark = pytest.mark.slow  # every test here reads the transfer fit (a real training)


def agreement(out: str, name: str) -> float:
    match = re.search(rf"^{name} .*agreement ([\d.]+)% ", out, re.M)
    assert match, out
    return float(match.group(1))


# ---------------------------------------------------------------------------- the checkpoint


def test_the_target_config_leaves_last_ckpt_though_it_never_validated(transfer_fitted):
    folder = transfer_fitted["last"].parent
    assert sorted(path.name for path in folder.iterdir()) == ["last.ckpt"]  # no best-*: no val
    checkpoint = load_checkpoint(transfer_fitted["last"])  # weights_only=True
    assert checkpoint["epoch"] == 1  # saved at the end of the last training epoch (epoch 1)


def test_every_checkpoint_stores_a_few_validation_images_as_evaluation_prepares_them(
    transfer_fitted,
):
    checkpoint = load_checkpoint(transfer_fitted["last"])
    sample = checkpoint["inference"]["sample"]
    assert sample["images"].dtype == torch.uint8 and sample["images"].shape == (20, 3, 16, 16)
    assert sample["labels"].shape == (20,) and sample["split"] == "val"
    # Normalized, they are exactly what the val split gives for the same files.
    images, labels = stored_sample(checkpoint)
    val = evaluation_images(checkpoint, transfer_fitted["last"], "val")
    index = {bytes(image.numpy().tobytes()): i for i, image in enumerate(val.images)}
    for image, label in zip(images, labels, strict=True):
        assert val.labels[index[bytes(image.numpy().tobytes())]] == label


# ---------------------------------------------------------------------------- export


@pytest.mark.parametrize("alone", [False, True], ids=["data_here", "checkpoint_alone"])
def test_onnx_export_says_what_it_checked_on(alone, transfer_fitted, tmp_path, capsys):
    checkpoint = transfer_fitted["last"]
    if alone:
        checkpoint = data_moved_away(checkpoint, tmp_path)
    output = tmp_path / "model.onnx"
    assert export_main(["--ckpt_path", str(checkpoint), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    if alone:
        assert "checked on the 20 validation images stored in the checkpoint (its training " \
            "data is not readable here" in out, out  # fmt: skip
    else:
        assert re.search(r"checked on the 20 images of the val split of .*glyph_target "
                         r"\(it has no test split\)", out), out  # fmt: skip
    assert agreement(out, "onnx") == 100.0


EXPORTED = """
import json, sys, numpy as np, torch
kind, path, images = sys.argv[1], sys.argv[2], torch.load(sys.argv[3])
if kind == "onnx":
    import onnxruntime
    logits = onnxruntime.InferenceSession(path).run(None, {"images": images.numpy()})[0]
elif kind == "pt2":
    logits = torch.export.load(path).module()(images).detach().numpy()
else:
    from torch._inductor import aoti_load_package
    logits = aoti_load_package(path)(images).numpy()
np.save(sys.argv[4], logits)
"""


def fresh_interpreter_logits(kind: str, path, images: torch.Tensor, tmp_path):
    """The exported file's logits for ``images``, computed in a new Python process."""
    torch.save(images, tmp_path / "images.pt")
    run_command([sys.executable, "-c", EXPORTED, kind, str(path), str(tmp_path / "images.pt"),
                 str(tmp_path / "logits.npy")])  # fmt: skip
    import numpy as np

    return torch.from_numpy(np.load(tmp_path / "logits.npy"))


@pytest.mark.parametrize("kind", ["onnx", "pt2", "aoti"])
def test_the_transfer_model_exports_and_loads_back_in_a_fresh_interpreter(
    kind, transfer_fitted, tmp_path, capsys
):
    """Feature cache on and backbone frozen in the checkpoint; neither is in the file."""
    checkpoint = data_moved_away(transfer_fitted["last"], tmp_path)
    output = tmp_path / ("model.onnx" if kind == "onnx" else "model.pt2")
    extra = [] if kind == "onnx" else ["--format", "pt2", *(["--no_aoti"] if kind == "pt2" else [])]
    assert export_main(["--ckpt_path", str(checkpoint), "--output", str(output), *extra]) == 0
    assert agreement(capsys.readouterr().out, "onnx" if kind == "onnx" else kind) == 100.0
    network, _ = network_from_checkpoint(checkpoint)
    images = torch.randn(5, 3, 16, 16)  # another batch size than the export's example (2)
    path = tmp_path / "model.aoti.pt2" if kind == "aoti" else output
    logits = fresh_interpreter_logits(kind, path, images, tmp_path)
    with torch.no_grad():
        assert (logits - network(images)).abs().max() < 1e-4


def graph_ops(network: torch.nn.Module) -> list[str]:
    program = export_program(network, 16)
    return [str(node.target) for node in program.graph.nodes if node.op == "call_function"]


def test_frozen_and_unfrozen_backbones_export_the_same_graph_without_training_machinery():
    from project.models.feature_cache import FeatureCache

    frozen = TransferNetwork(10)
    frozen.feature_cache = FeatureCache()
    frozen.set_stage("head")
    unfrozen = TransferNetwork(10)
    unfrozen.set_stage("all")
    ops = graph_ops(frozen.for_inference())
    assert ops == graph_ops(unfrozen.for_inference())
    assert not [op for op in ops if "grad" in op], ops  # no wrap_with_set_grad_enabled
    assert frozen.feature_cache is None


# ---------------------------------------------------------------------------- check_split


def test_check_split_refuses_a_split_the_data_does_not_have(transfer_fitted, tmp_path, capsys):
    output = tmp_path / "model.onnx"
    status = export_main(["--ckpt_path", str(transfer_fitted["last"]), "--check_split", "test",
                          "--output", str(output)])  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert status == 2 and "--check_split test:" in error and "has no test split" in error
    assert len(error.splitlines()) == 1 and not output.exists()


def test_an_old_checkpoint_without_its_data_names_check_split_none(
    transfer_fitted, tmp_path, capsys
):
    checkpoint = data_moved_away(transfer_fitted["last"], tmp_path)
    contents = torch.load(checkpoint, weights_only=True)
    del contents["inference"]["sample"]  # as written before issue 34
    torch.save(contents, checkpoint)
    output = tmp_path / "model.onnx"
    assert export_main(["--ckpt_path", str(checkpoint), "--output", str(output)]) == 2
    error = capsys.readouterr().err.strip()
    assert "stores no sample images" in error and "--check_split none" in error
    assert len(error.splitlines()) == 1 and not output.exists()
    args = ["--ckpt_path", str(checkpoint), "--output", str(output), "--check_split", "none"]
    assert export_main(args) == 0
    out = capsys.readouterr().out
    assert "checked on 16 random images" in out and "accuracy n/a" in out, out


# ---------------------------------------------------------------------------- quantize

QUANTIZE_ROW = re.compile(r"^onnxruntime +fp32 acc ([\d.]+) +int8 acc ([\d.]+) +top-1 agreement "
                          r"([\d.]+)%", re.M)  # fmt: skip


def test_quantize_from_the_checkpoint_alone_prints_the_speed_its_goal_is_stated_in(
    transfer_fitted, tmp_path, capsys
):
    checkpoint = data_moved_away(transfer_fitted["last"], tmp_path)
    output = tmp_path / "model-int8.onnx"
    args = ["--ckpt_path", str(checkpoint), "--backend", "onnxruntime", "--output", str(output),
            "--speed_rounds", "2"]  # fmt: skip
    assert quantize_main(args) == 0
    out = capsys.readouterr().out
    assert "calibrated on the 20 validation images stored in the checkpoint" in out, out
    assert "evaluated on the 20 validation images stored in the checkpoint" in out, out
    assert QUANTIZE_ROW.search(out), out
    threads = torch.get_num_threads()
    assert re.search(rf"speed \(batch 32, median of 2 interleaved rounds, {threads} threads, "
                     r"\d+ CPUs, load average [\d.]+\):", out), out  # fmt: skip
    assert re.search(r"images/s: ORT fp32 [\d,]+ \(1\.00x\), ORT int8 [\d,]+ \([\d.]+x\)", out)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt", "model-int8.onnx"]


def test_quantize_calibrates_on_every_training_image_where_there_are_fewer_than_256(
    transfer_fitted, tmp_path, capsys
):
    args = ["--ckpt_path", str(transfer_fitted["last"]), "--backend", "onnxruntime",
            "--output", str(tmp_path / "int8.onnx"), "--speed_rounds", "0"]  # fmt: skip
    assert quantize_main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"calibrated on 60 of the 60 training images of .*glyph_target", out), out
    assert re.search(r"evaluated on the 20 images of the val split of .*\(it has no test", out)
    assert "speed" not in out  # --speed_rounds 0


def test_quantize_calibrates_on_a_folder_of_images_from_elsewhere(
    transfer_fitted, tmp_path, capsys
):
    folder = tmp_path / "calibration"
    for index in range(5):
        save_image(folder / "any" / f"{index}.png", size=(40, 30), seed=index)
    args = ["--ckpt_path", str(transfer_fitted["last"]), "--backend", "onnxruntime",
            "--calibration_root", str(folder), "--output", str(tmp_path / "int8.onnx"),
            "--speed_rounds", "0"]  # fmt: skip
    assert quantize_main(args) == 0
    assert f"calibrated on 5 images of {folder}" in capsys.readouterr().out


def test_pt2e_quantizes_every_convolution_of_the_frozen_transfer_model(
    transfer_fitted, tmp_path, capsys
):
    """The frozen backbone's no-grad region hid every convolution from the quantizer (5,120
    int8 elements of 11.2 M); the inference network has none, and the count is printed."""
    output = tmp_path / "int8.pt2"
    args = ["--ckpt_path", str(transfer_fitted["last"]), "--backend", "pt2e",
            "--output", str(output), "--speed_rounds", "1"]  # fmt: skip
    assert quantize_main(args) == 0
    out = capsys.readouterr().out
    match = re.search(r"int8 weights: ([\d.]+)% of the convolution/linear weight elements "
                      r"\((\d+) of (\d+) layers", out)  # fmt: skip
    assert match and float(match.group(1)) == 100.0, out
    assert match.group(2) == match.group(3) == "21"  # 20 convolutions and the head
    assert re.search(r"PT2E int8 \(compiled\) [\d,]+ \(", out), out


# ---------------------------------------------------------------------------- prune


def test_prune_from_the_checkpoint_alone_without_fine_tuning(transfer_fitted, tmp_path, capsys):
    checkpoint = data_moved_away(transfer_fitted["last"], tmp_path)
    output = tmp_path / "pruned.ckpt"
    args = ["--ckpt_path", str(checkpoint), "--amount", "0.3", "--finetune_epochs", "0",
            "--output", str(output), "--speed_rounds", "2", "--speed_batch", "8"]  # fmt: skip
    assert prune_main(args) == 0
    out = capsys.readouterr().out
    assert "accuracy on the 20 validation images stored in the checkpoint" in out, out
    assert re.search(r"latency per batch: original [\d.]+ ms \(1\.00x\), pruned [\d.]+ ms", out)
    assert "speed (batch 8, median of 2 interleaved rounds" in out
    pruned = load_checkpoint(output)
    assert "optimizer_states" not in pruned and pruned["inference"]["sample"]["labels"].numel()
    assert output.stat().st_size < checkpoint.stat().st_size


def test_prune_refuses_to_fine_tune_without_the_training_images(transfer_fitted, tmp_path, capsys):
    checkpoint = data_moved_away(transfer_fitted["last"], tmp_path)
    with pytest.raises(SystemExit) as stopped:
        prune_main(["--ckpt_path", str(checkpoint), "--amount", "0.3",
                    "--output", str(tmp_path / "pruned.ckpt")])  # fmt: skip
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "--finetune_epochs 0" in error and len(error.splitlines()) == 1, error
    assert not (tmp_path / "pruned.ckpt").exists()


# ---------------------------------------------------------------------------- bad input


COMMANDS = {
    "export": lambda args: export_main(args),
    "quantize": lambda args: quantize_main([*args, "--backend", "onnxruntime"]),
    "prune": lambda args: prune_main([*args, "--amount", "0.3"]),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["file_for_folder", "not_a_checkpoint", "calibration_0"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    command, case, transfer_fitted, tmp_path, capsys
):
    if case == "calibration_0" and command != "quantize":
        pytest.skip("--calibration is quantize's")
    checkpoint, output = transfer_fitted["last"], tmp_path / "out" / "model.file"
    extra = ["--calibration", "0"] if case == "calibration_0" else []
    if case == "file_for_folder":
        (tmp_path / "out").write_text("a file where the folder should be")
    if case == "not_a_checkpoint":
        checkpoint = tmp_path / "notes.ckpt"
        checkpoint.write_text("a text file renamed .ckpt")
    try:
        status = COMMANDS[command](["--ckpt_path", str(checkpoint), "--output", str(output),
                                    *extra])  # fmt: skip
    except SystemExit as stopped:  # prune exits through exit_on_error
        status = stopped.code
    error = capsys.readouterr().err.strip().splitlines()
    expected = {
        "file_for_folder": f"--output {output}: {tmp_path / 'out'} is a file, not a folder",
        "not_a_checkpoint": f"{checkpoint}: not a readable checkpoint (not a PyTorch checkpoint",
        "calibration_0": "--calibration 0: at least 1 image",
    }[case]
    assert status == 2 and len(error) == 1 and expected in error[0], error
    assert not output.exists()
    if case != "file_for_folder":
        assert not output.parent.is_dir() or not any(output.parent.iterdir())


def test_the_stored_sample_is_not_written_into_an_exported_file(transfer_fitted, tmp_path, capsys):
    import onnxruntime

    output = tmp_path / "model.onnx"
    assert export_main(["--ckpt_path", str(transfer_fitted["last"]), "--output", str(output)]) == 0
    metadata = onnxruntime.InferenceSession(str(output)).get_modelmeta().custom_metadata_map
    assert set(metadata) == {"class_names", "image_size", "mean", "std"}
    assert json.loads(metadata["class_names"]) == [str(digit) for digit in range(10)]
