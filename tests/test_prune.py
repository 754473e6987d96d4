"""``python -m project prune``: the shared 2-epoch CNN pruned by 30% and fine-tuned for an epoch
through the real command; the result loads in ``test``, ``export`` (ONNX) and a resumed ``fit``,
and with ``torch.load(weights_only=True)``. Bad input: one line, exit status 2, no file.

    .venv/bin/python -m pytest tests/test_prune.py -q
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from project.deploy.prune import main as prune_main
from project.lit.cli import main as cli_main
from project.models.pruned import PruningRecordError, layer_widths, shrink_to

from .helpers import REPO


def parameter_count(path) -> int:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return sum(tensor.numel() for key, tensor in checkpoint["state_dict"].items()
               if key.startswith("network.") and tensor.is_floating_point())  # fmt: skip


def run_args(log_dir) -> list[str]:
    """fit arguments passed through prune (and used to test and resume): files under log_dir."""
    return [
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


@pytest.fixture(scope="module")
def pruned(fitted, tmp_path_factory) -> dict:
    """The shared checkpoint pruned by 30%, fine-tuned 1 epoch (constant LR, so that the resume
    below can train one epoch more: a finished OneCycle cannot be stepped past its end)."""
    folder = tmp_path_factory.mktemp("pruned")
    output = folder / "pruned.ckpt"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = prune_main(
            ["--ckpt_path", str(fitted["best"]), "--amount", "0.3", "--finetune_epochs", "1",
             "--output", str(output), *run_args(folder), "--model.init_args.lr_scheduler=null"]
        )  # fmt: skip
    assert status == 0
    return {"path": output, "folder": folder, "out": printed.getvalue()}


@pytest.mark.slow
def test_prune_writes_a_smaller_checkpoint_that_says_it_is_pruned(pruned, fitted):
    out = pruned["out"]
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert {"original", "pruned", "fine-tuned"} <= set(rows), out
    assert re.search(r"0\.\d\dx params, 0\.\d\dx MACs", rows["fine-tuned"]), out
    # weights_only=True reads it: plain tensors and values, no pickled module.
    checkpoint = torch.load(pruned["path"], map_location="cpu", weights_only=True)
    record = checkpoint["hyper_parameters"]["pruning"]
    assert record["amount"] == 0.3 and record["source"] == str(fitted["best"])
    assert record["layers"]["backbone.0.0"] == [3, 22, 1]  # 32 channels less 30%, rounded
    assert parameter_count(pruned["path"]) < 0.6 * parameter_count(fitted["best"])
    assert not list(pruned["folder"].glob(".*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_pruned_checkpoint_tests_with_the_accuracy_prune_printed(pruned, fitted):
    cli = cli_main(["test", *fitted["args"], *run_args(pruned["folder"]),
                    f"--ckpt_path={pruned['path']}"])  # fmt: skip
    accuracy = cli.trainer.callback_metrics["test/acc"].item()
    printed = re.search(r"fine-tuned .* ([\d.]+)%", pruned["out"]).group(1)
    assert accuracy == pytest.approx(float(printed) / 100, abs=1e-4)
    assert accuracy > 0.5


@pytest.mark.slow
def test_pruned_checkpoint_exports_to_onnx_with_the_same_predictions(pruned):
    import onnxruntime

    from project.deploy.export import export_onnx, network_from_checkpoint

    network, settings = network_from_checkpoint(pruned["path"])
    assert layer_widths(network)["backbone.0.0"] == [3, 22, 1]
    output = export_onnx(network, settings, pruned["folder"] / "pruned.onnx")
    images = torch.randn(16, 3, 16, 16)
    (logits,) = onnxruntime.InferenceSession(str(output)).run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = network(images)
    assert (torch.from_numpy(logits).argmax(1) == expected.argmax(1)).all()
    assert abs(logits - expected.numpy()).max() < 1e-4


@pytest.mark.slow
def test_the_pruned_checkpoint_holds_weights_only_and_its_fine_tuning_run_resumes(pruned, fitted):
    contents = torch.load(pruned["path"], map_location="cpu", weights_only=True)
    assert not {"optimizer_states", "lr_schedulers", "loops", "callbacks"} & set(contents)
    assert pruned["path"].stat().st_size < fitted["best"].stat().st_size
    resume = re.search(r"continue it with fit --ckpt_path (\S+)", pruned["out"]).group(1)
    cli = cli_main(["fit", *fitted["args"], *run_args(pruned["folder"]),
                    f"--ckpt_path={resume}", "--trainer.max_epochs=2"])  # fmt: skip
    assert cli.trainer.current_epoch == 2  # one more epoch than the fine-tuning's one
    last = torch.load(Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["hyper_parameters"]["pruning"]["layers"]["backbone.0.0"] == [3, 22, 1]
    assert last["state_dict"]["network.backbone.0.0.weight"].shape[0] == 22


# ---------------------------------------------------------------------------- bad input


def test_a_text_file_is_refused_in_one_line_by_the_command(tmp_path):
    """Through ``python -m project prune`` itself: the exit status and stderr a user sees."""
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    output = tmp_path / "out.ckpt"
    result = subprocess.run(
        [sys.executable, "-m", "project", "prune", "--ckpt_path", str(path), "--amount", "0.3",
         "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and str(path) in result.stderr, result.stderr
    assert not output.exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--amount", "0"], "--amount 0.0: must be between 0 and 1"),
        (["--amount", "1.5"], "--amount 1.5: must be between 0 and 1"),
        (["--amount", "0.3", "--finetune_epochs", "-1"], "--finetune_epochs -1"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path, capsys, options, message):
    path = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": {}, "state_dict": {}}, path)
    with pytest.raises(SystemExit) as stopped:
        prune_main(["--ckpt_path", str(path), *options, "--output", str(tmp_path / "o.ckpt")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.ckpt").exists()


def test_a_checkpoint_of_another_model_family_is_refused(tmp_path, capsys):
    path = tmp_path / "other.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "timm.models.ResNet"}, "state_dict": {}}, path)
    with pytest.raises(SystemExit) as stopped:
        prune_main(["--ckpt_path", str(path), "--amount", "0.3"])
    assert stopped.value.code == 2
    assert "'timm.models.ResNet' is not one of this project's" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [path]


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    output = blocker / "pruned.ckpt"  # a folder that is a file
    with pytest.raises(SystemExit) as stopped:
        prune_main(["--ckpt_path", str(tmp_path / "missing.ckpt"), "--amount", "0.3",
                    "--output", str(output)])  # fmt: skip
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"--output {output}: {blocker} is a file, not a folder" in err, err
    assert err.count("\n") == 1, err


def test_a_record_from_another_network_is_refused_by_name():
    from project.models.cnn import SmallCNN

    with pytest.raises(PruningRecordError, match="'backbone.conv1'"):
        shrink_to(SmallCNN(10), {"backbone.conv1": [3, 44, 1]})
    network = shrink_to(SmallCNN(10), {"backbone.0.0": [3, 20, 1], "backbone.0.1": [20],
                                       "backbone.1.0": [20, 64, 1]})  # fmt: skip
    assert network(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
