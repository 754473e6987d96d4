"""Lightning's dependency injection, end to end, in both loops.

The runs are the CLIs' own entry points called in this process (``in_process``: parse, build,
train, as ``python -m project`` and ``python -m project.manual`` do, without an interpreter start
each); what a fresh process adds is tested where it matters: the export of each network in its
own interpreter, the user's package found on PYTHONPATH there, and the manual loop where
Lightning cannot be imported.

- Any torch optimizer and scheduler from the YAML: RAdam with ReduceLROnPlateau trains to
  bit-identical weights in both loops, and tests, predicts and exports in Lightning.
- A network class from the user's own package (outside project/, on PYTHONPATH): fits, resumes,
  tests, predicts and exports in Lightning, fits and tests in the manual loop, bit-identically.
- The manual loop fits, resumes and tests where ``import lightning`` fails.
- accumulate_grad_batches and limit_*_batches in the manual loop: the same weights as Lightning's.
- A checkpoint written before the optimizer was injected (tests/data/) still tests and exports.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest
import torch

from project.runs.checkpoints import load_checkpoint, network_state

from .helpers import CNN_CONFIG, REPO, assert_same_tensors, run_command

pytestmark = pytest.mark.slow

OLD_CHECKPOINT = REPO / "tests" / "data" / "cnn_before_injection.ckpt"


def small_args(digits_root: Path, log_dir: Path, *extra: str) -> list[str]:
    """The default config on a few batches of the digits: seconds per run, both loops."""
    return [
        "--config",
        CNN_CONFIG,
        f"--data.root={digits_root}",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--model.init_args.widths=[8, 16]",
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=5",
        "--trainer.limit_val_batches=3",
        "--trainer.precision=32-true",
        "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


def run(loop: str, stage: str, args: list[str], env: dict | None = None, check: bool = True):
    module = "project" if loop == "lightning" else "project.manual"
    return run_with_env([sys.executable, "-m", module, stage, *args], env or {}, check)


def in_process(loop: str, stage: str, args: list[str]) -> dict:
    """``python -m project STAGE ARGS`` (loop "lightning") or ``python -m project.manual ...``
    through the same entry point, in this process; returns the stage's logged metrics.

    Either loop may go first. (Once, after a Lightning fit in the same process, the manual loop
    read ``--trainer.limit_train_batches=5`` as the share 5.0 and trained on every batch: typing's
    cache of unions, project/manual/trainer_options.py; the RAdam test runs Lightning first.)"""
    if loop == "lightning":
        from project.lit.cli import main

        return dict(main([stage, *args]).trainer.callback_metrics)
    from project.manual.cli import run as manual_run

    result = manual_run([stage, *args])
    return result if isinstance(result, dict) else {}


def run_with_env(command: list[str], env: dict, check: bool):
    """run_command with ``env`` added to this process's environment."""
    return run_command(command, check=check, env={**os.environ, **env})


def last_checkpoint(log_dir: Path, folder: str) -> Path:
    [path] = sorted(log_dir.rglob(f"{folder}/checkpoints/last.ckpt"))
    return path


def weights(path: Path) -> dict:
    return network_state(load_checkpoint(path))


def logged_lrs(run_folder: Path, tag: str) -> list[float]:
    from project.runs.curves import read_scalars

    steps, values = read_scalars(run_folder)[tag]
    return values


# ---------------------------------------------------------------------------- optimizer, schedule


def test_radam_with_reduce_on_plateau_from_the_yaml_in_both_loops(digits_root, tmp_path):
    config = tmp_path / "radam.yaml"
    config.write_text(
        "model:\n  init_args:\n"
        "    optimizer:\n      class_path: torch.optim.RAdam\n"
        "      init_args: {lr: 0.01, weight_decay: 0.0001}\n"
        "    lr_scheduler:\n      class_path: torch.optim.lr_scheduler.ReduceLROnPlateau\n"
        "      init_args: {mode: max, factor: 0.5, patience: 0, threshold: 0.5}\n"
        "    lr_scheduler_monitor: val/acc\n"
    )
    logs = tmp_path / "logs"
    args = [
        *small_args(digits_root, logs),
        "--config",
        str(config),
        "--trainer.log_every_n_steps=1",
    ]
    in_process("lightning", "fit", args)  # first: see in_process
    in_process("manual", "fit", args)
    lightning_last = last_checkpoint(logs, "version_0")
    manual_last = last_checkpoint(logs, "manual_version_0")
    assert_same_tensors(weights(lightning_last), weights(manual_last))
    # RAdam really ran, and the plateau halved the LR once val/acc stopped improving by half
    # (threshold 0.5: epoch 0 sets the best, epoch 1 is "no better"), in both loops: 0.01 for
    # epochs 0 and 1, 0.005 for epoch 2.
    for path in (lightning_last, manual_last):
        checkpoint = load_checkpoint(path)
        assert checkpoint["hyper_parameters"]["optimizer"]["class_path"] == "torch.optim.RAdam"
    for folder in ("version_0", "manual_version_0"):
        lrs = logged_lrs(logs / "cnn" / folder, "lr/model")
        first, last = lrs[0], lrs[-1]
        assert (first, last) == pytest.approx((0.01, 0.005), rel=1e-6), (folder, lrs)

    # test, predict, export from the Lightning checkpoint; test in the manual loop
    tested = in_process("lightning", "test", [*args, f"--ckpt_path={lightning_last}"])
    manual_tested = in_process("manual", "test", [*args, f"--ckpt_path={manual_last}"])
    assert float(tested["test/acc"]) == pytest.approx(float(manual_tested["test/acc"]))
    predictions = tmp_path / "predictions.csv"
    predict_root = digits_root / "3"
    in_process(
        "lightning",
        "predict",
        [*args, f"--ckpt_path={lightning_last}", f"--data.predict_root={predict_root}",
         "--trainer.callbacks+=project.lit.callbacks.PredictionWriter",
         f"--trainer.callbacks.output_file={predictions}"],
    )  # fmt: skip
    with open(predictions) as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(list(predict_root.iterdir()))
    exported = run_command(
        [sys.executable, "-m", "project", "export", "--ckpt_path", str(lightning_last),
         "--output", str(tmp_path / "radam.onnx")]
    )  # fmt: skip
    assert "logits N x 10" in exported.stdout


# ---------------------------------------------------------------------------- a user's network

USER_PACKAGE = '''
"""A user's own network, outside project/: any nn.Module whose first argument is the class count."""
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.classify = nn.Linear(4 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))
'''


def test_a_network_from_the_users_own_package_in_both_loops(digits_root, tmp_path, monkeypatch):
    package = tmp_path / "site" / "my_nets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(USER_PACKAGE)
    config = tmp_path / "my_net.yaml"
    config.write_text(
        "model:\n  class_path: project.lit.classifier.ImageClassifier\n  init_args:\n"
        "    network:\n      class_path: my_nets.TinyNet\n      init_args: {width: 6}\n"
        "    optimizer:\n      class_path: torch.optim.SGD\n"
        "      init_args: {lr: 0.05, momentum: 0.9, nesterov: true}\n"
        "    lr_scheduler: warmup_cosine\n"
    )
    every_epoch = tmp_path / "every_epoch.yaml"  # Lightning only: a checkpoint per epoch
    every_epoch.write_text(
        "trainer:\n  callbacks+:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {filename: 'e{epoch}', save_top_k: -1, monitor: val/loss,"
        " auto_insert_metric_name: false}\n"
    )
    env = {"PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    monkeypatch.syspath_prepend(tmp_path / "site")  # the runs in this process find it too
    logs = tmp_path / "logs"
    args = [*small_args(digits_root, logs), "--config", str(config)]
    args = [a for a in args if not a.startswith("--model.init_args.widths")]  # TinyNet's own
    in_process("manual", "fit", args)
    manual = last_checkpoint(logs, "manual_version_0")
    in_process("lightning", "fit", [*args, "--config", str(every_epoch)])
    straight = last_checkpoint(logs, "version_0")
    after_epoch_1 = straight.parent / "e1.ckpt"
    in_process("lightning", "fit", [*args, f"--ckpt_path={after_epoch_1}"])  # resume: epoch 2
    resumed = last_checkpoint(logs, "version_1")
    assert load_checkpoint(resumed)["epoch"] == 2
    assert_same_tensors(weights(straight), weights(resumed))  # the resume is exact
    assert_same_tensors(weights(straight), weights(manual))  # and the loops are identical
    assert "features.0.weight" in weights(manual)  # the user's own network was trained

    for loop, path in (("lightning", resumed), ("manual", manual)):
        tested = in_process(loop, "test", [*args, f"--ckpt_path={path}"])
        assert 0.0 <= float(tested["test/acc"]) <= 1.0, loop
    predictions = tmp_path / "predictions.csv"
    in_process(
        "lightning",
        "predict",
        [*args, f"--ckpt_path={resumed}", f"--data.predict_root={digits_root / '7'}",
         "--trainer.callbacks+=project.lit.callbacks.PredictionWriter",
         f"--trainer.callbacks.output_file={predictions}"],
    )  # fmt: skip
    assert predictions.is_file()
    export = [sys.executable, "-m", "project", "export", "--ckpt_path", str(resumed),
              "--output", str(tmp_path / "mine.onnx")]  # fmt: skip
    refused = run_with_env(export, env, check=False)
    assert refused.returncode == 2 and "my_nets.TinyNet" in refused.stderr
    assert "--trust_class_paths" in refused.stderr
    run_with_env([*export, "--trust_class_paths"], env, check=True)
    assert (tmp_path / "mine.onnx").is_file()


# ---------------------------------------------------------------------------- without Lightning

NO_LIGHTNING = '''
"""sitecustomize for the test: importing Lightning fails, as in an environment without it."""
import sys


class NoLightning:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lightning", "pytorch_lightning", "lightning_fabric"):
            raise ImportError(f"{name} is blocked: this run must not need Lightning")
        return None


sys.meta_path.insert(0, NoLightning())
'''


def test_the_manual_loop_fits_resumes_and_tests_where_lightning_cannot_be_imported(
    digits_root, tmp_path
):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_LIGHTNING)
    env = {"PYTHONPATH": str(blocker)}
    probe = run_with_env(
        [sys.executable, "-c", "import lightning"], env, check=False
    )  # the blocker works: a plain import fails
    assert probe.returncode != 0 and "is blocked" in probe.stderr
    logs = tmp_path / "logs"
    # A constant LR: extending a stopped run by an epoch is then the same schedule (a onecycle
    # run of 2 epochs cannot step into a third).
    args = small_args(
        digits_root,
        logs,
        "--trainer.accumulate_grad_batches=2",
        "--model.init_args.lr_scheduler=null",
    )
    two = [a for a in args if not a.startswith("--trainer.max_epochs")] + ["--trainer.max_epochs=2"]
    run("manual", "fit", two, env)
    resumed = run("manual", "fit", [*args, "--resume=last"], env)
    assert "resumed from" in resumed.stdout
    [last] = sorted(logs.rglob("manual_version_1/checkpoints/last.ckpt"))
    assert load_checkpoint(last)["epoch"] == 3
    tested = run("manual", "test", [*args, f"--ckpt_path={last}"], env)
    assert "test/acc" in tested.stdout


# ---------------------------------------------------------------------------- trainer options


def test_accumulated_gradients_and_limited_batches_match_lightning(digits_root, tmp_path):
    """accumulate_grad_batches 2 over 5 batches: steps after batches 2, 4 and 5 (the epoch's end
    flushes), in both loops; limit_train_batches / limit_val_batches as counts."""
    logs = tmp_path / "logs"
    args = small_args(digits_root, logs, "--trainer.accumulate_grad_batches=2")
    in_process("manual", "fit", args)
    in_process("lightning", "fit", args)
    lightning_last = load_checkpoint(last_checkpoint(logs, "version_0"))
    manual_last = load_checkpoint(last_checkpoint(logs, "manual_version_0"))
    assert lightning_last["global_step"] == manual_last["global_step"] == 9  # 3 steps x 3 epochs
    assert_same_tensors(network_state(lightning_last), manual_last["model"])


# ---------------------------------------------------------------------------- old checkpoints


def test_a_checkpoint_from_before_the_injection_still_tests_and_exports(digits_root, tmp_path):
    old = load_checkpoint(OLD_CHECKPOINT)
    assert old["hyper_parameters"]["optimizer"] == "adamw"  # the format before injection
    args = [*small_args(digits_root, tmp_path / "logs"), "--model.init_args.widths=[4, 8]"]
    tested = {
        loop: in_process(loop, "test", [*args, f"--ckpt_path={OLD_CHECKPOINT}"])
        for loop in ("manual", "lightning")
    }  # the file's network was barely trained (chance accuracy): both loops read it alike
    assert float(tested["lightning"]["test/loss"]) == pytest.approx(tested["manual"]["test/loss"])
    exported = run_command(
        [sys.executable, "-m", "project", "export", "--ckpt_path", str(OLD_CHECKPOINT),
         "--output", str(tmp_path / "old.onnx")]
    )  # fmt: skip
    assert "logits N x 10" in exported.stdout
    assert torch.load(OLD_CHECKPOINT, weights_only=True)  # still plain values
