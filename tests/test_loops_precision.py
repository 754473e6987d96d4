"""The two loops under mixed precision, gradient clipping and a per-epoch schedule, through their
command lines only (``python -m project fit`` and ``python -m project.manual fit``, configs/cnn.yaml
plus overrides), compared on the checkpoints they save.

- bf16 autocast on the CPU, with gradient_clip_val (by norm, then by value) and the ``step``
  schedule stepped once per epoch: both loops end with bit-identical weights and the same rate.
- float16 with a GradScaler (``16-mixed``): Lightning turns it into bf16 on the CPU, so the loops
  cannot be compared there; the manual loop runs it for real and torch's own GradScaler and
  clip_grad_norm_ are watched: every step scales the loss, unscales, clips the unscaled gradients,
  steps, updates, in that order. Where CUDA is present, the loops are compared under float16 too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from project.runs.checkpoints import load_checkpoint, network_state

from .helpers import REPO, assert_same_tensors, quick_args, run_command


def fit(module: str, args: list[str], log_dir: Path) -> dict:
    """``python -m <module> fit`` in a fresh interpreter; its last.ckpt, loaded."""
    run_command([sys.executable, "-m", module, "fit", *args], env=child_env())
    (last,) = log_dir.rglob("last.ckpt")
    return load_checkpoint(last)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's project, whatever is installed


def learning_rates(checkpoint: dict) -> list[float]:
    """The optimizer's learning rates, from a Lightning or a manual-loop checkpoint."""
    state = checkpoint["optimizer_states"][0] if "optimizer_states" in checkpoint else None
    state = state or checkpoint["optimizer"]
    return [group["lr"] for group in state["param_groups"]]


STEP_SCHEDULE = [  # torch's StepLR, injected: halved after every epoch
    "--model.init_args.lr_scheduler=torch.optim.lr_scheduler.StepLR",
    "--model.init_args.lr_scheduler.step_size=1",
    "--model.init_args.lr_scheduler.gamma=0.5",
]
CASES = {
    "bf16, clip by norm, step schedule": [
        "--trainer.precision=bf16-mixed", "--trainer.gradient_clip_val=0.1", *STEP_SCHEDULE,
    ],
    "bf16, clip by value, step schedule, channels_last auto": [
        "--trainer.precision=bf16-mixed", "--trainer.gradient_clip_val=0.005",
        "--trainer.gradient_clip_algorithm=value", *STEP_SCHEDULE,
        "--model.init_args.channels_last=auto",  # each loop decides it: they must agree
    ],
}  # fmt: skip


BATCHES = 6  # training batches per epoch in the compared runs


def compare_loops(digits_root: Path, tmp_path: Path, extra: list[str]) -> tuple[dict, dict]:
    """Both loops on the same deterministic run of 2 epochs of 6 batches; their last checkpoints
    (6 of the 19 batches: identity over 12 steps and 2 schedule steps, in a third of the time)."""
    checkpoints = []
    for module in ("project", "project.manual"):
        log_dir = tmp_path / module
        args = [*quick_args(digits_root, log_dir), "--trainer.deterministic=true",
                f"--trainer.limit_train_batches={BATCHES}", *extra]  # fmt: skip
        checkpoints.append(fit(module, args, log_dir))
    return checkpoints[0], checkpoints[1]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_loops_are_bit_identical_under_bf16_clipping_and_a_per_epoch_schedule(
    case, digits_root, tmp_path
):
    lightning, manual = compare_loops(digits_root, tmp_path, CASES[case])
    assert lightning["global_step"] == manual["global_step"] == 2 * BATCHES
    assert_same_tensors(network_state(lightning), network_state(manual))
    # The step schedule halved the rate once per epoch in both, not per batch (0.005 * 0.5**12).
    assert learning_rates(lightning) == learning_rates(manual)
    assert learning_rates(manual)[0] in (0.005 * 0.5, 0.005 * 0.5**2)


# The manual loop's run, with torch's GradScaler and clip_grad_norm_ watched from outside.
SPY = """
import json, os, runpy, sys
import torch

calls = []

def spy(owner, name):
    original = getattr(owner, name)
    def watched(*args, **kwargs):
        result = original(*args, **kwargs)
        # clip_grad_norm_ returns the norm it measured, before clipping
        calls.append([name, float(result) if name == "clip_grad_norm_" else None])
        return result
    setattr(owner, name, watched)

for name in ("scale", "unscale_", "step", "update"):
    spy(torch.amp.GradScaler, name)
spy(torch.nn.utils, "clip_grad_norm_")
sys.argv = ["project.manual", *sys.argv[1:]]
try:
    runpy.run_module("project.manual", run_name="__main__", alter_sys=True)
finally:
    with open(os.environ["SPY_LOG"], "w") as file:
        json.dump(calls, file)
"""

STEP_ORDER = ["scale", "unscale_", "clip_grad_norm_", "step", "update"]


@pytest.mark.slow
def test_the_manual_loop_unscales_then_clips_then_steps_under_float16(digits_root, tmp_path):
    log = tmp_path / "calls.json"
    args = [*quick_args(digits_root, tmp_path / "logs"), "--trainer.max_epochs=1",
            "--trainer.precision=16-mixed", "--trainer.gradient_clip_val=1.0"]  # fmt: skip
    env = {**child_env(), "SPY_LOG": str(log)}
    run_command([sys.executable, "-c", SPY, "fit", *args], env=env)
    calls = json.loads(log.read_text())
    names = [name for name, _ in calls]
    steps = len(names) // len(STEP_ORDER)
    assert steps == 19 and names == STEP_ORDER * steps, names[:12]
    # clip_grad_norm_ measured the true gradients: the GradScaler multiplies the loss by 2**16 at
    # first, and clipping the scaled gradients would see norms tens of thousands of times larger.
    norms = [value for name, value in calls if name == "clip_grad_norm_"]
    assert all(0 < norm < 100 for norm in norms), norms
    checkpoint = load_checkpoint(next((tmp_path / "logs").rglob("last.ckpt")))
    assert checkpoint["scaler"]["scale"] > 1  # a live scaler's state travels with the checkpoint
    assert all(torch.isfinite(value).all() for value in network_state(checkpoint).values())


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast needs CUDA here")
def test_loops_are_bit_identical_under_float16_with_a_grad_scaler_on_cuda(digits_root, tmp_path):
    extra = ["--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.precision=16-mixed",
             "--trainer.gradient_clip_val=0.1", *STEP_SCHEDULE]  # fmt: skip
    lightning, manual = compare_loops(digits_root, tmp_path, extra)
    assert lightning["global_step"] == manual["global_step"] == 2 * 19
    assert_same_tensors(network_state(lightning), network_state(manual))
    assert learning_rates(lightning) == learning_rates(manual)
