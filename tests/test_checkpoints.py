"""project/runs/checkpoints.py function by function: what each promises, checked in-process and
fast.

The end-to-end tests (tests/test_reliability.py: damaged files, kill -9, SIGTERM, code-carrying
pickles) run these functions through both loops' commands; these tests, the atomic writes' among
them, pin each function's own contract, so that `make mutation` sees a change to any of them
within seconds. Run alone:
``.venv/bin/python -m pytest tests/test_checkpoints.py``
"""

from __future__ import annotations

import datetime
import os
import random

import numpy as np
import pytest
import torch

from project.core.errors import InputError
from project.runs import checkpoints
from project.runs.checkpoints import (
    CheckpointError,
    fill_network,
    lightning_state_dict,
    load_checkpoint,
    load_network_weights,
    model_arguments,
    network_state,
    newest_last_checkpoint,
    restore_rng_states,
    rng_states,
    save_atomic,
)

from .helpers import CreatesMarker


def small_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


# ------------------------------------------------------------------------------- save_atomic


def test_save_atomic_writes_a_file_that_loads_back_equal_in_a_new_folder(tmp_path):
    state = small_network().state_dict()
    target = tmp_path / "new" / "deeper" / "last.ckpt"
    assert save_atomic({"model": state, "epoch": 3}, target) == target
    loaded = load_checkpoint(target)
    assert loaded["epoch"] == 3
    assert loaded["model"].keys() == state.keys()
    assert all(torch.equal(loaded["model"][k], v) for k, v in state.items())
    assert os.listdir(target.parent) == ["last.ckpt"]  # no temporary left beside it


def test_save_atomic_writes_a_hidden_temporary_in_the_same_folder_then_renames(
    tmp_path, monkeypatch
):
    seen = {}
    real_replace = os.replace

    def watching_replace(source, destination):
        seen["source"], seen["destination"] = str(source), str(destination)
        seen["folder then"] = sorted(os.listdir(tmp_path))
        real_replace(source, destination)

    monkeypatch.setattr(checkpoints.os, "replace", watching_replace)
    save_atomic({"model": {}}, tmp_path / "last.ckpt")
    temporary = f".last.ckpt.{os.getpid()}.tmp"
    assert seen == {
        "source": str(tmp_path / temporary),
        "destination": str(tmp_path / "last.ckpt"),
        "folder then": [temporary],  # the target appears only by the rename
    }
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_save_atomic_syncs_the_file_and_then_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        synced.append(os.path.realpath(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(checkpoints.os, "fsync", recording_fsync)
    save_atomic({"model": {}}, tmp_path / "best.ckpt")
    assert synced == [str(tmp_path / f".best.ckpt.{os.getpid()}.tmp"), str(tmp_path)]


def test_a_folder_that_cannot_be_synced_does_not_fail_the_save(tmp_path, monkeypatch):
    def refusing_fsync(descriptor):
        if os.path.isdir(f"/proc/self/fd/{descriptor}"):
            raise OSError("fsync not supported on this folder")

    monkeypatch.setattr(checkpoints.os, "fsync", refusing_fsync)
    save_atomic({"model": {"w": torch.ones(2)}}, tmp_path / "last.ckpt")
    assert torch.equal(load_checkpoint(tmp_path / "last.ckpt")["model"]["w"], torch.ones(2))


def test_a_crash_during_a_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_atomic({"model": {"w": torch.ones(3)}}, tmp_path / "last.ckpt")

    def crash_halfway(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"model": {"w": torch.zeros(3)}}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # the temporary file is gone


@pytest.mark.parametrize("key", ["model", "state_dict"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_in_either_format_naming_the_first_three(key, bad, tmp_path):
    weights = {f"layer{i}.weight": torch.tensor([1.0, bad]) for i in range(5)}
    weights["steps"] = torch.tensor([3])  # integer tensors have no NaN: never blamed
    target = tmp_path / "last.ckpt"
    with pytest.raises(FloatingPointError) as caught:
        save_atomic({key: weights}, target)
    assert str(caught.value) == (
        f"not saving {target}: non-finite weights in "
        "['layer0.weight', 'layer1.weight', 'layer2.weight']"
    )
    assert os.listdir(tmp_path) == []


def test_finite_weights_beside_integer_tensors_are_saved(tmp_path):
    weights = {"w": torch.tensor([1.0, -2.0]), "steps": torch.tensor([3])}
    save_atomic({"state_dict": weights}, tmp_path / "last.ckpt")
    assert (tmp_path / "last.ckpt").is_file()


# ---------------------------------------------------------------------------- load_checkpoint


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path / "nowhere.ckpt")
    assert str(caught.value) == f"checkpoint not found: {tmp_path / 'nowhere.ckpt'}"
    assert isinstance(caught.value, InputError)  # the entry points print it as one line


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path)


def test_bytes_that_are_no_checkpoint_are_named(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_bytes(b"these are notes, not a checkpoint")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: not a readable checkpoint (not a PyTorch checkpoint: neither the zip archive "
        "torch.save writes nor a pickle)"
    )  # found by its first bytes, before torch.load reads anything


def test_a_pickle_holding_other_objects_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "dated.ckpt"
    torch.save({"model": {}, "when": datetime.datetime(2026, 12, 3)}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: refused, it holds objects other than tensors and plain values "
        "(weights_only=True): Unsupported global: GLOBAL datetime.datetime was not an allowed "
        "global by default"
    )


def test_code_in_a_checkpoint_never_runs_even_where_torch_is_told_to_default_to_full_pickle(
    tmp_path, monkeypatch
):
    # This variable turns torch.load's *default* into weights_only=False; only an explicit
    # weights_only=True keeps the code below from running.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"model": {}, "payload": CreatesMarker(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_cut_off_pickle_names_what_the_unpickler_met(tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(b"\x80\x04\x95")  # a pickle's first three bytes
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value).endswith("(weights_only=True): Unsupported operand 149")


def test_an_empty_file_names_the_error_even_when_torch_gives_no_text(tmp_path):
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: not a readable checkpoint (truncated or not a PyTorch file): EOFError"
    )


@pytest.mark.parametrize(
    "message, reason",
    [
        ("Weights only load failed.\n\tWeightsUnpickler error: Unsupported operand 80.\n\nMore.",
         "Unsupported operand 80"),
        ("Weights only load failed. Another wording.\nSecond line.", "Weights only load failed"),
        ("WeightsUnpickler error: Unsupported global: GLOBAL models.NetX.", "Unsupported global: "
         "GLOBAL models.NetX"),
        ("WeightsUnpickler error:", "no reason given"),
    ],
)  # fmt: skip
def test_the_refusal_reason_is_the_unpicklers_first_sentence(message, reason):
    assert checkpoints._refusal_reason(message) == reason


def test_load_checkpoint_maps_storages_as_asked(tmp_path):
    save_atomic({"model": {"w": torch.ones(2)}}, tmp_path / "last.ckpt")
    locations = []

    def record(storage, location):
        locations.append(location)
        return storage

    assert torch.equal(load_checkpoint(tmp_path / "last.ckpt", record)["model"]["w"], torch.ones(2))
    assert locations == ["cpu"]


def test_a_file_holding_no_dictionary_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == f"{path}: not a checkpoint (holds a Tensor)"


def test_load_checkpoint_accepts_a_plain_string_path(tmp_path):
    save_atomic({"model": {}, "epoch": 1}, tmp_path / "last.ckpt")
    assert load_checkpoint(str(tmp_path / "last.ckpt"))["epoch"] == 1


# --------------------------------------------------------------------- newest_last_checkpoint


def test_last_is_the_newest_last_ckpt_across_run_folders(tmp_path):
    folders = [tmp_path / f"version_{i}" for i in range(4)]
    for folder, written in zip(folders[:3], [300, 100, 200], strict=True):
        path = save_atomic({"model": {}}, folder / "checkpoints" / "last.ckpt")
        os.utime(path, (written, written))
    (folders[3] / "checkpoints").mkdir(parents=True)  # a new run: no last.ckpt yet
    expected = folders[0] / "checkpoints" / "last.ckpt"
    assert newest_last_checkpoint(folders, "the runs") == expected
    assert newest_last_checkpoint(folders[1:], "the runs") == folders[2] / "checkpoints/last.ckpt"


def test_a_stale_temporary_file_is_never_taken_for_last(tmp_path):
    old = save_atomic({"model": {}}, tmp_path / "version_0" / "checkpoints" / "last.ckpt")
    stale = tmp_path / "version_1" / "checkpoints" / ".last.ckpt.12345.tmp"  # a kill -9 mid-save
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    folders = sorted(tmp_path.glob("version_*"))
    assert newest_last_checkpoint(folders, "test") == old
    with pytest.raises(CheckpointError, match="no last.ckpt under"):
        newest_last_checkpoint(folders[1:], "version_1")


def test_no_last_checkpoint_names_where_it_looked(tmp_path):
    (tmp_path / "version_0" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError) as caught:
        newest_last_checkpoint([tmp_path / "version_0"], "lightning_logs/digits")
    assert str(caught.value) == "no last.ckpt under lightning_logs/digits: nothing to resume"


# ------------------------------------------------------------- network_state and its inverse


def test_a_manual_checkpoint_gives_its_model_weights_as_they_are():
    state = small_network().state_dict()
    assert network_state({"model": state, "state_dict": {"network.x": 1}}) is state


def test_a_lightning_checkpoint_gives_the_network_keys_without_their_prefix():
    state = small_network().state_dict()
    checkpoint = {"state_dict": {**lightning_state_dict(state), "criterion.weight": 1}}
    assert network_state(checkpoint) == state  # same keys, same tensor objects
    assert list(lightning_state_dict(state)) == [f"network.{key}" for key in state]


def test_a_key_that_only_contains_the_prefix_keeps_its_name():
    checkpoint = {"state_dict": {"network.ema.network.weight": 1, "other.network.bias": 2}}
    assert network_state(checkpoint) == {"ema.network.weight": 1}


@pytest.mark.parametrize("checkpoint", [{"state_dict": {"criterion.weight": 1}}, {"epoch": 2}])
def test_a_checkpoint_without_network_weights_is_named(checkpoint):
    with pytest.raises(CheckpointError) as caught:
        network_state(checkpoint, "run/last.ckpt")
    assert str(caught.value) == (
        "run/last.ckpt: holds no network weights (expected 'model' or 'state_dict' with "
        f"network.* keys; found {sorted(checkpoint)})"
    )


def test_the_error_lists_at_most_eight_keys():
    checkpoint = {f"key{i}": i for i in range(10)}
    with pytest.raises(CheckpointError) as caught:
        network_state(checkpoint)
    assert str(caught.value).startswith("checkpoint: holds no network weights")
    assert str(caught.value).endswith(f"found {sorted(checkpoint)[:8]})")


def test_load_network_weights_fills_the_network_from_a_lightning_file(tmp_path):
    trained = small_network()
    with torch.no_grad():
        trained[0].weight.add_(1.0)
    path = save_atomic(
        {"state_dict": lightning_state_dict(trained.state_dict()), "epoch": 4},
        tmp_path / "best.ckpt",
    )
    fresh = small_network()
    assert load_network_weights(fresh, path)["epoch"] == 4
    assert torch.equal(fresh[0].weight, trained[0].weight)


def test_load_network_weights_names_the_file_in_its_errors(tmp_path):
    path = save_atomic({"state_dict": {"criterion.weight": torch.ones(1)}}, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match=f"^{path}: holds no network weights"):
        load_network_weights(small_network(), path)
    other = torch.nn.Sequential(torch.nn.Linear(3, 5))
    path = save_atomic({"model": other.state_dict()}, tmp_path / "b.ckpt")
    with pytest.raises(CheckpointError, match=f"^{path}: does not fit this model"):
        load_network_weights(small_network(), path)


def test_a_network_of_another_shape_is_refused_naming_the_file_and_keys():
    state = small_network().state_dict()
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with pytest.raises(CheckpointError) as caught:
        fill_network(other, state, "digits.ckpt")
    message = str(caught.value)
    assert message.startswith("digits.ckpt: does not fit this model, mismatched keys: ")
    assert "2.weight" in message and "size mismatch" in message


def test_a_missing_or_an_extra_key_is_an_error_not_a_silent_partial_load():
    network = small_network()
    state = {k: v for k, v in small_network().state_dict().items() if k != "2.bias"}
    with pytest.raises(CheckpointError, match="Missing key"):
        fill_network(network, state, "partial.ckpt")
    with pytest.raises(CheckpointError, match="Unexpected key"):
        fill_network(network, {**small_network().state_dict(), "extra": torch.ones(1)}, "x")


# ------------------------------------------------------------------------------- random states


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed + 1)
    random.seed(seed + 2)


def test_saved_random_states_restored_give_the_same_draws_after_a_round_trip(tmp_path):
    seed_all(1)
    np.random.randn()  # a cached Gaussian is part of numpy's state
    save_atomic({"model": {}, "rng_states": rng_states()}, tmp_path / "last.ckpt")
    expected = draws()
    seed_all(9)
    restore_rng_states(load_checkpoint(tmp_path / "last.ckpt")["rng_states"])  # weights_only
    assert draws() == expected


@pytest.mark.parametrize(
    "reseed", [torch.manual_seed, np.random.seed, random.seed], ids=["torch", "numpy", "python"]
)
def test_each_generator_is_restored(reseed):
    seed_all(1)
    states = rng_states()
    expected = draws()
    reseed(9)  # only this generator moves on
    restore_rng_states(states)
    assert draws() == expected


def test_the_states_hold_only_tensors_lists_and_tuples():
    states = rng_states()
    assert set(states) == {"torch", "cuda", "numpy", "python"}
    assert isinstance(states["torch"], torch.Tensor)
    assert isinstance(states["cuda"], list)  # one state per GPU, [] without one
    assert all(isinstance(state, torch.Tensor) for state in states["cuda"])
    assert isinstance(states["numpy"][1], torch.Tensor)  # weights_only loads no numpy arrays


# ---------------------------------------------------------------------------- model_arguments


def test_model_arguments_leave_out_jsonargparse_keys():
    hparams = {
        "_class_path": "project.lit.classifier.CNNClassifier",
        "_instantiator": "x",
        "num_classes": 10,
        "optimizer": {"class_path": "torch.optim.SGD"},
    }
    assert model_arguments(hparams) == {
        "num_classes": 10,
        "optimizer": {"class_path": "torch.optim.SGD"},
    }


def test_a_checkpoint_from_before_the_injection_drops_its_optimizer_arguments():
    hparams = {
        "num_classes": 10,
        "optimizer": "adamw",
        "lr": 0.003,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "schedule": "onecycle",
        "step_epochs": 5,
        "gamma": 0.1,
        "dropout": 0.25,
    }
    assert model_arguments(hparams) == {"num_classes": 10, "dropout": 0.25}


def test_a_checkpoint_from_before_the_injection_may_lack_some_of_those_arguments():
    assert model_arguments({"optimizer": "sgd", "lr": 0.1, "dropout": 0.1}) == {"dropout": 0.1}


def test_legacy_names_are_kept_when_the_optimizer_is_injected():
    hparams = {"optimizer": None, "gamma": 0.5}  # a network's own argument named gamma
    assert model_arguments(hparams) == {"optimizer": None, "gamma": 0.5}
