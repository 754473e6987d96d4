"""Checkpoint files: written atomically, read safely, understood by both training loops.

Two formats live side by side, and each loop reads both:

- Lightning's ``.ckpt`` (``python -m project fit``): the LightningModule's weights under
  ``"state_dict"`` with keys ``network.backbone.*`` / ``network.head.*`` (the classifier holds the
  plain nn.Module as ``self.network``), plus optimizer, scheduler and loop state.
- The manual loop's ``.ckpt`` (``python -m project.manual fit``): the plain network's
  ``state_dict()`` under ``"model"`` (keys without the ``network.`` prefix), next to
  ``"optimizer"``, ``"scheduler"``, ``"scaler"``, ``"epoch"``, ``"rng_states"``...

``network_state`` maps either one to the network's own keys; ``lightning_state_dict`` maps back.
``AtomicCheckpointIO`` (project/lit/cli.py) makes Lightning read and write through the same two
functions as the manual loop (``save_atomic``, ``load_checkpoint``); ``newest_last_checkpoint`` is
what ``last`` means. Plain PyTorch, no Lightning import: the manual loop and the networks in
project/models/ use it without loading Lightning.

Every read uses ``torch.load(weights_only=True)``: a checkpoint is a pickle, and a full unpickler
runs whatever code the file's author put in it. Every write goes to a temporary file in the same
folder, is flushed to disk and then renamed over the target, so a crash mid-save leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from project.core.errors import InputError

NETWORK_PREFIX = "network."  # the LightningModules keep the plain nn.Module as self.network


class CheckpointError(InputError, RuntimeError):
    """A checkpoint file is missing, unreadable, refused, or not one of ours."""


def save_atomic(checkpoint: dict, path: str | Path) -> Path:
    """torch.save ``checkpoint`` to ``path`` so that readers only ever see a complete file.

    Refuses weights that are NaN or infinite: a diverged run must never become "best" or "last".
    """
    path = Path(path)
    weights = checkpoint.get("state_dict") or checkpoint.get("model") or {}
    broken = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:
        raise FloatingPointError(f"not saving {path}: non-finite weights in {broken[:3]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is atomic only within one filesystem. The leading dot
    # and the suffix keep a temporary file left by a crash from ever looking like a checkpoint.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it visible
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(path.parent)  # make the rename itself survive a power cut
    return path


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; every failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as file:
        head = file.read(2)
    # torch.save writes a zip archive ("PK"); old torch versions a pickle (protocol 2+: 0x80).
    if head and head != b"PK" and head[:1] != b"\x80":
        raise CheckpointError(
            f"{path}: not a readable checkpoint (not a PyTorch checkpoint: neither the zip "
            "archive torch.save writes nor a pickle)"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):  # not a pickle at all
            raise CheckpointError(f"{path}: not a readable checkpoint ({error})") from None
        # weights_only refuses anything that is not plain data: never retry without it.
        reason = _refusal_reason(str(error))
        raise CheckpointError(
            f"{path}: refused, it holds objects other than tensors and plain values "
            f"(weights_only=True): {reason}"
        ) from None
    except Exception as error:  # torch raises many types for damaged files (even KeyError)
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or not a PyTorch file): "
            f"{str(error) or type(error).__name__}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(checkpoint).__name__})")
    return checkpoint


def _refusal_reason(message: str) -> str:
    """What torch's weights_only unpickler refused, in one line: "Unsupported global: GLOBAL
    datetime.datetime was not an allowed global by default", "Unsupported operand 149" (its
    message is a page of advice with the reason inside, after "WeightsUnpickler error:")."""
    _, marker, reason = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (reason if marker else message).splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".") if lines else "no reason given"


def newest_last_checkpoint(run_folders: list[Path], description: str) -> Path:
    """The most recently written ``checkpoints/last.ckpt`` among ``run_folders``.

    A restart opens a new log version, so "last" means the newest file across the versions, not
    the (still empty) folder of the new one. Temporary files (``.last.ckpt.<pid>.tmp``) never match.
    """
    candidates = [
        folder / "checkpoints" / "last.ckpt"
        for folder in run_folders
        if (folder / "checkpoints" / "last.ckpt").is_file()
    ]
    if not candidates:
        raise CheckpointError(f"no last.ckpt under {description}: nothing to resume")
    return max(candidates, key=lambda path: path.stat().st_mtime)


def network_state(checkpoint: dict, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The plain network's weights from a Lightning or a manual-loop checkpoint."""
    if "model" in checkpoint:  # the manual loop saves network.state_dict() as is
        return checkpoint["model"]
    if "state_dict" in checkpoint:  # Lightning prefixes every key with the attribute name
        state = {
            key.removeprefix(NETWORK_PREFIX): value
            for key, value in checkpoint["state_dict"].items()
            if key.startswith(NETWORK_PREFIX)
        }
        if state:
            return state
    raise CheckpointError(
        f"{path}: holds no network weights (expected 'model' or 'state_dict' with "
        f"{NETWORK_PREFIX}* keys; found {sorted(checkpoint)[:8]})"
    )


def lightning_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's weights keyed as the LightningModule's state_dict expects them."""
    return {NETWORK_PREFIX + key: value for key, value in state.items()}


def load_network_weights(network: torch.nn.Module, path: str | Path) -> dict:
    """Fill ``network`` from either checkpoint format; returns the checkpoint.

    Strict: a checkpoint of another architecture or class count is an error that lists the
    mismatched keys and shapes, never a silent partial load.
    """
    checkpoint = load_checkpoint(path)
    fill_network(network, network_state(checkpoint, path), path)
    return checkpoint


def fill_network(network: torch.nn.Module, state: dict, path: str | Path) -> None:
    """``network.load_state_dict(state)``, strict, with an error that names the file."""
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:  # PyTorch lists the missing, unexpected and resized keys
        message = f"{path}: does not fit this model, mismatched keys: {error}"
        raise CheckpointError(message) from None


# ---------------------------------------------------------------------------- random states
# Saved with every checkpoint, so a resumed run shuffles, augments and drops out exactly as the
# uninterrupted run would have. Stored as tensors, ints and tuples only (weights_only loads them).


def rng_states() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
        "python": random.getstate(),
    }


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


# Model arguments that checkpoints written before the optimizer was injected
# (project/core/optimizers.py) carry: they only ever shaped the optimizer, so rebuilding the model
# for test, predict or export ignores them (the config's optimizer is used when such a checkpoint
# resumes).
LEGACY_OPTIMIZER_KEYS = ("lr", "weight_decay", "momentum", "schedule", "step_epochs", "gamma")


def model_arguments(hparams: dict) -> dict:
    """A LightningModule's init arguments from a checkpoint's hyper_parameters (``_class_path``
    and ``_instantiator`` left out), those of checkpoints from before the injection too."""
    arguments = {k: v for k, v in hparams.items() if not k.startswith("_")}
    if isinstance(arguments.get("optimizer"), str):  # "adamw" / "sgd": before injection
        for key in ("optimizer", *LEGACY_OPTIMIZER_KEYS):
            arguments.pop(key, None)
    return arguments
