"""End to end through the real entry point (project.lit.cli.main and ``python -m project``).

One short fit on the bundled digits (the session fixture ``fitted``, tests/conftest.py) is shared
by the tests below; each then checks what a user would look at: checkpoints, TensorBoard events,
validate/test/predict from the best checkpoint.
The configs: configs/defaults.yaml (shared) under each model config, read the same by both loops.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project.lit.cli import main
from project.manual import settings

from .helpers import (
    BOUND_SECONDS,
    CNN_CONFIG,
    CONFIGS,
    DEFAULTS_CONFIG,
    RESNET_CONFIG,
    assert_same_predictions,
    only_line,
    quick_args,
    run_command,
    save_image,
)


@pytest.mark.slow
def test_fit_writes_best_and_last_checkpoints(fitted):
    assert fitted["best"].is_file() and fitted["last"].is_file()
    assert fitted["best"].name.startswith("best-epoch") and fitted["last"].name == "last.ckpt"
    checkpoint = torch.load(fitted["best"], map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["num_classes"] == 10  # linked from the data
    # last.ckpt is the final epoch, even when that epoch was not the best (resume needs it).
    last = torch.load(fitted["last"], map_location="cpu", weights_only=True)
    assert last["epoch"] == fitted["epochs"] - 1


@pytest.mark.slow
def test_fit_logs_tensorboard_scalars(fitted):
    events = EventAccumulator(str(fitted["log_dir"]))
    events.Reload()
    tags = events.Tags()["scalars"]
    for tag in ("train/loss", "train/acc", "train/loss_epoch", "val/loss", "val/acc", "lr/model"):
        assert tag in tags, tags
    assert len(events.Scalars("val/acc")) == 2  # one value per epoch


@pytest.mark.slow
def test_validate_from_best_checkpoint_reproduces_val_acc(fitted):
    cli = main(["validate", *fitted["args"], f"--ckpt_path={fitted['best']}"], run=True)
    metrics = cli.trainer.callback_metrics
    assert metrics["val/acc"].item() == pytest.approx(fitted["best_score"], abs=1e-6)


@pytest.mark.slow
def test_test_reports_test_acc(fitted):
    cli = main(["test", *fitted["args"], f"--ckpt_path={fitted['best']}"])
    accuracy = cli.trainer.callback_metrics["test/acc"].item()
    assert 0.5 < accuracy <= 1.0  # two epochs already learn the digits well


@pytest.mark.slow
def test_predict_writes_one_row_per_image(fitted, digits_root, tmp_path):
    new_images = tmp_path / "new"
    for digit in ("3", "7"):  # real digits copied from the data, plus one random image
        for source in sorted((digits_root / digit).glob("*.png"))[:2]:
            (new_images / source.name).parent.mkdir(parents=True, exist_ok=True)
            (new_images / source.name).write_bytes(source.read_bytes())
    save_image(new_images / "noise.jpg", size=(8, 8))
    for output, batch in (
        (tmp_path / "predictions.csv", []),
        (tmp_path / "one_by_one.csv", ["--data.batch_size=1"]),
    ):
        main(
            [
                "predict",
                *fitted["args"],
                *batch,
                f"--ckpt_path={fitted['best']}",
                f"--data.predict_root={new_images}",
                "--trainer.callbacks+=project.lit.callbacks.PredictionWriter",
                f"--trainer.callbacks.output_file={output}",
            ]
        )
    with open(tmp_path / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 5
    assert {row["predicted"] for row in rows} <= {str(d) for d in range(10)}
    assert all(0 < float(row["probability"]) <= 1 for row in rows)
    # Every path gets its own image's prediction: the batched run against one image per batch.
    assert_same_predictions(tmp_path / "predictions.csv", tmp_path / "one_by_one.csv")


def test_model_configs_say_only_what_differs_from_the_shared_defaults():
    defaults = yaml.safe_load(DEFAULTS_CONFIG.read_text())
    for path in (CNN_CONFIG, RESNET_CONFIG):
        trainer = yaml.safe_load(Path(path).read_text())["trainer"]
        # The logger's name and the model's own early stopping; nothing else of the defaults.
        assert set(trainer) & set(defaults["trainer"]) == {"logger"}, path
        assert trainer["logger"] == {"init_args": {"name": trainer["logger"]["init_args"]["name"]}}
        assert "callbacks" not in trainer  # "callbacks+": added to the defaults' list


def callback_names(callbacks) -> list[str]:
    return [callback["class_path"].rsplit(".", 1)[-1] for callback in callbacks]


@pytest.mark.slow
def test_print_config_is_complete_and_runs_again_as_a_config(digits_root, tmp_path, monkeypatch):
    # From another working directory: configs/defaults.yaml is found from the package.
    printed = run_command(
        [sys.executable, "-m", "project", "fit", *quick_args(digits_root, tmp_path),
         "--print_config"],
        cwd=tmp_path,
    )  # fmt: skip
    config = tmp_path / "printed.yaml"
    config.write_text(printed.stdout)
    complete = yaml.safe_load(printed.stdout)
    assert complete["model"]["class_path"] == "project.lit.classifier.CNNClassifier"
    shared = callback_names(yaml.safe_load(DEFAULTS_CONFIG.read_text())["trainer"]["callbacks"])
    callbacks = complete["trainer"]["callbacks"]
    assert callback_names(callbacks) == [*shared, "EarlyStopping"]  # defaults, then cnn.yaml's
    assert complete["trainer"]["logger"]["init_args"]["name"] == "cnn"
    assert complete["trainer"]["log_every_n_steps"] == 10 and complete["seed_everything"] == 42
    # The manual loop reads the same files to the same callbacks.
    monkeypatch.chdir(tmp_path)
    manual = settings.parse(["fit", *quick_args(digits_root, tmp_path)])
    # (LightningCLI fills in every default argument; the manual loop keeps what the files say.)
    assert callback_names(manual.trainer.callbacks) == callback_names(callbacks)
    for written, printed_callback in zip(manual.trainer.callbacks, callbacks, strict=True):
        assert written.get("init_args", {}).items() <= printed_callback.get("init_args", {}).items()
    cli = main(
        ["fit", "--config", str(config), "--trainer.fast_dev_run=true",
         f"--trainer.default_root_dir={tmp_path}"]
    )  # fmt: skip
    assert cli.model.hparams.num_classes == 10 and cli.trainer.global_step == 1


@pytest.mark.slow
def test_fast_dev_run_preset_stacks(digits_root, tmp_path):
    preset = str(CONFIGS / "presets" / "fast_dev_run.yaml")
    cli = main(
        ["fit", *quick_args(digits_root, tmp_path), "--config", preset,
         f"--trainer.default_root_dir={tmp_path}"]
    )  # fmt: skip
    assert cli.trainer.fast_dev_run and cli.trainer.global_step == 1
    assert not (CONFIGS.parent / "checkpoints").exists()  # nothing written outside tmp_path


def test_missing_data_path_is_a_one_line_error(tmp_path):
    result = run_command(
        [sys.executable, "-m", "project", "fit", "--config", CNN_CONFIG,
         f"--data.root={tmp_path / 'no_such_folder'}"],
        cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    error = only_line(result.stderr)  # no traceback
    assert error.startswith(f"error: data folder not found: {tmp_path / 'no_such_folder'}")


def test_help_lists_the_subcommands():
    result = run_command([sys.executable, "-m", "project", "--help"])
    for subcommand in ("fit", "validate", "test", "predict"):
        assert subcommand in result.stdout


@pytest.mark.slow
def test_best_checkpoint_holds_the_maximum_val_acc(fitted):
    events = EventAccumulator(str(fitted["log_dir"]))
    events.Reload()
    best_logged = max(event.value for event in events.Scalars("val/acc"))
    assert fitted["best_score"] == pytest.approx(best_logged, abs=1e-7)
    checkpoint = torch.load(fitted["best"], map_location="cpu", weights_only=True)
    states = [v for k, v in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert states[0]["best_model_score"].item() == pytest.approx(best_logged, abs=1e-7)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(
    url: str, server: subprocess.Popen, ready=lambda data: True, timeout: float = BOUND_SECONDS
):
    """GET ``url`` once the server answers with data that is ``ready``: TensorBoard takes seconds
    to start, more when busy, and answers before its first scan of the log folder has finished
    (with no runs, or a run without all its events yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = json.loads(response.read())
            if ready(data):
                return data
            problem = f"not ready yet: {str(data)[:300]}"
        except OSError as error:  # refused while starting, or slow to answer: URLError, timeout
            problem = str(error)
        if server.poll() is not None:
            pytest.fail(f"TensorBoard exited with status {server.returncode}: {problem}")
        if time.monotonic() > deadline:
            pytest.fail(f"TensorBoard did not answer {url} within {timeout:.0f} s: {problem}")
        time.sleep(0.5)


@pytest.mark.slow
def test_tensorboard_serves_the_runs_scalars_images_and_hparams(fitted):
    runs = fitted["log_dir"].parent
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(runs),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/data/plugin"
        run = fitted["log_dir"].name
        # Each get_json fails the test unless the server serves these tags within the bound.
        wanted = {"train/loss", "val/acc", "lr/model", "hp/best_val_acc"}
        get_json(f"{base}/scalars/tags", server, lambda d: wanted <= set(d.get(run, ())))
        figures = {"val/confusion_matrix", "val/predictions"}
        get_json(f"{base}/images/tags", server, lambda d: figures <= set(d.get(run, ())))
        url = f"{base}/images/images?run={run}&tag=val/confusion_matrix"
        listed = get_json(url, server, lambda d: len(d) >= 2)
        assert len(listed) == 2  # one picture per validation (2 epochs)
    finally:
        server.terminate()
        try:
            server.wait(timeout=BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    events = EventAccumulator(str(fitted["log_dir"]))
    events.Reload()
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


@pytest.mark.slow
def test_export_to_onnx_matches_pytorch_at_two_batch_sizes(fitted, tmp_path, digits_root):
    import onnxruntime

    from project.deploy.export import main as export_main
    from project.deploy.export import network_from_checkpoint

    output = tmp_path / "model.onnx"
    assert export_main(["--ckpt_path", str(fitted["best"]), "--output", str(output)]) == 0
    session = onnxruntime.InferenceSession(str(output))
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["class_names"]) == [str(digit) for digit in range(10)]
    assert int(metadata["image_size"]) == 16 and len(json.loads(metadata["mean"])) == 3
    network, _ = network_from_checkpoint(fitted["best"])
    for batch_size in (1, 7):
        images = torch.randn(batch_size, 3, 16, 16)
        (logits,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            expected = network(images).numpy()
        assert logits.shape == (batch_size, 10)
        assert abs(logits - expected).max() < 1e-4


def test_export_refuses_a_checkpoint_naming_foreign_code(tmp_path, capsys):
    from project.deploy.export import main as export_main

    path = tmp_path / "foreign.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "os.system"}, "state_dict": {}}, path)
    assert export_main(["--ckpt_path", str(path)]) == 2
    assert "is not one of this project's" in capsys.readouterr().err


@pytest.mark.slow
def test_make_train_fits_then_tests_the_best_checkpoint(digits_root, tmp_path):
    """``make train`` is ``python -m project.quickstart --config configs/cnn.yaml``: fit, then
    test the best checkpoint, and print where everything went."""
    args = [*quick_args(digits_root, tmp_path), "--trainer.max_epochs=1"]
    ran = run_command([sys.executable, "-m", "project.quickstart", *args])
    out = ran.stdout
    # Lightning warns when a CLI gets args and sees options in sys.argv too: quickstart hands
    # them over, so a learner's first `make train` does not start with that warning.
    assert "not recommended to provide both args and command line arguments" not in ran.stderr
    best = Path(re.search(r"best checkpoint: +(\S+)", out).group(1))
    assert best.is_file() and best.name.startswith("best-epoch"), out
    assert Path(re.search(r"last checkpoint: +(\S+)", out).group(1)).is_file(), out
    printed = float(re.search(r"test accuracy: +(\S+)", out).group(1))
    # The printed accuracy is the best checkpoint's, as `python -m project test` measures it.
    cli = main(["test", *args, f"--ckpt_path={best}"])
    assert printed == pytest.approx(cli.trainer.callback_metrics["test/acc"].item(), abs=1e-4)
    # Why the loss stays far above 0 (configs/cnn.yaml smooths the labels by 0.1, 10 classes).
    assert "label smoothing 0.1: a perfect model's loss is 0.500 here, not 0" in out, out


@pytest.mark.slow
def test_ckpt_path_last_takes_the_newest_lightning_version_beside_manual_runs(
    digits_root, tmp_path
):
    """--ckpt_path last: the newest last.ckpt across this run name's versions (a restart opens a
    new, empty version), never a manual-loop run's (manual_version_N, beside them, even newer)."""
    from project.manual.cli import run as manual_run

    args = [*quick_args(digits_root, tmp_path), "--trainer.max_epochs=1"]
    main(["fit", *args])  # version_0
    newest = main(["fit", *args])  # version_1
    manual = manual_run(["fit", *args])  # newer still, in the manual loop's own folder
    assert manual.last_checkpoint.is_file() and "manual" in manual.last_checkpoint.parts[-3]
    tested = main(["test", *args, "--ckpt_path", "last"])  # opens version_2 for its own logs
    expected = Path(newest.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert expected.parents[1].name == "version_1"
    assert Path(tested.trainer.ckpt_path) == expected


@pytest.mark.slow
def test_weights_only_false_loads_what_the_safe_default_refuses(fitted, tmp_path, capsys):
    """A checkpoint carrying a plain Python object that weights_only=True does not allow (a
    datetime): refused by default with the option named, loaded with --weights_only false."""
    import datetime

    checkpoint = torch.load(fitted["best"], map_location="cpu", weights_only=True)
    checkpoint["saved_at"] = datetime.datetime(2026, 1, 1)
    path = tmp_path / "with_a_datetime.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(SystemExit) as stopped:
        main(["test", *fitted["args"], f"--ckpt_path={path}"])
    assert stopped.value.code == 2
    assert "refused" in only_line(capsys.readouterr().err)
    trusted = main(["test", *fitted["args"], f"--ckpt_path={path}", "--weights_only=false"])
    reference = main(["test", *fitted["args"], f"--ckpt_path={fitted['best']}"])
    accuracy = trusted.trainer.callback_metrics["test/acc"].item()
    assert accuracy == reference.trainer.callback_metrics["test/acc"].item()
