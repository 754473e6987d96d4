"""Checker of exercise 3 (checkpointing): ``python -m exercises.check 3``.

The checks save and load real files in a temporary folder with the learner's functions:

- into a folder that does not exist yet;
- reading the file back with ``torch.load(weights_only=True)``: a pickled whole model is refused;
- resuming: 3 Adam steps, save, 2 more steps, against load + 2 steps in a fresh model and optimizer:
  the weights must be equal, which needs the optimizer's state (Adam's moments) in the file;
- loading a checkpoint saved on a GPU: the learner's save runs with every tensor tagged ``cuda:0``
  (as a GPU machine writes them), and loading it for the CPU needs ``map_location``; without a
  GPU, torch itself refuses the file, and with one, ``torch.load`` is watched for the argument;
- a path where no checkpoint exists yet.

The checks that load the learner's file need a file that holds the model's weights: while
``saves_state_dicts`` fails they are skipped, rather than blaming a ``load_checkpoint`` that is
right for a file that is wrong.
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from exercises.checks import Mistake, needs, require


def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        images = torch.randn(6, 5, generator=generator)
        labels = torch.randint(0, 3, (6,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()


def adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=0.05)


@contextlib.contextmanager
def saved(exercise, epoch: int = 1):
    """A trained model, its optimizer and the learner's checkpoint of them in a temporary folder."""
    model = small_model(seed=0)
    optimizer = adam(model)
    train_steps(model, optimizer, steps=3, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoints" / "last.pt"
        path.parent.mkdir()
        exercise.save_checkpoint(path, model, optimizer, epoch)
        require(
            path.is_file(), f"save_checkpoint wrote nothing at {path.name}: torch.save(..., path)"
        )
        yield path, model, optimizer


def read(path: Path):
    """The checkpoint as a safe load sees it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for pickled classes
        # Which classes and functions it would need, read without running any of them.
        needs = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if "builtins.getattr" in needs:  # how pickle stores a bound method: getattr(obj, name)
            raise Mistake(
                "the checkpoint holds a method, not what it returns: model.state_dict (or "
                "optimizer.state_dict) without parentheses pickles the whole object with it; "
                "save model.state_dict() and optimizer.state_dict() (save_checkpoint)"
            ) from None
        raise Mistake(
            "the checkpoint pickles Python objects (the whole model?), so it needs the model's "
            "code to load and could run code when loaded; save model.state_dict() and "
            f"optimizer.state_dict() instead ({type(error).__name__})"
        ) from None


def state_dicts(value):
    """Every dict inside ``value`` (itself included)."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from state_dicts(item)


# ----------------------------------------------------------------------------- the checks


def creates_folder(exercise) -> None:
    """save_checkpoint creates the folder it saves into"""
    model = small_model(seed=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs" / "first" / "checkpoints" / "last.pt"
        try:
            exercise.save_checkpoint(path, model, adam(model), 1)
        except NotImplementedError:
            raise
        except (
            RuntimeError,
            OSError,
        ) as error:  # torch.save: "Parent directory ... does not exist"
            if path.parent.exists():
                raise
            raise Mistake(
                f"saving into a folder that does not exist failed ({type(error).__name__}): "
                "create it first with path.parent.mkdir(parents=True, exist_ok=True)"
            ) from None
        require(path.is_file(), "save_checkpoint wrote nothing at the path it was given")
        try:  # the next epoch's checkpoint goes into the folder that now exists
            exercise.save_checkpoint(path.with_name("epoch2.pt"), model, adam(model), 2)
        except FileExistsError:
            raise Mistake(
                "the second save, into the folder the first one created, failed "
                "(FileExistsError): every epoch saves into the same folder; "
                "path.parent.mkdir(parents=True, exist_ok=True) (save_checkpoint)"
            ) from None


def saves_state_dicts(exercise) -> None:
    """the checkpoint holds the model's state_dict, not the pickled model"""
    with saved(exercise) as (path, model, _):
        checkpoint = read(path)
        expected = model.state_dict()
        holds_weights = any(
            set(d) == set(expected) and all(torch.equal(d[k], v) for k, v in expected.items())
            for d in state_dicts(checkpoint)
        )
        require(
            holds_weights,
            "the checkpoint does not hold the weights of the model it was given: save "
            "model.state_dict() of that model (after training, not a copy from before, nor a "
            "network built again)",
        )


def shown(value) -> str:
    """A returned value for a message: a number as it is, anything else by its type."""
    return repr(value) if value is None or isinstance(value, int | float) else type(value).__name__


@needs(saves_state_dicts)
def resumes_exactly(exercise) -> None:
    """training resumed from the checkpoint equals training without a stop (optimizer state)"""
    with saved(exercise) as (path, model, optimizer):
        train_steps(model, optimizer, steps=2, seed=2)  # the run that never stopped
        has_optimizer = any("state" in d and "param_groups" in d for d in state_dicts(read(path)))
        require(
            has_optimizer,
            "the checkpoint has no optimizer state, so a resumed run forgets Adam's moment "
            "estimates and step count and trains differently: save optimizer.state_dict()",
        )
        resumed = small_model(seed=99)  # other weights, so loading must overwrite them
        resumed_optimizer = adam(resumed)
        exercise.load_checkpoint(path, resumed, resumed_optimizer, torch.device("cpu"))
        restored = bool(resumed_optimizer.state)  # a fresh Adam has no state before its first step
        train_steps(resumed, resumed_optimizer, steps=2, seed=2)
    difference = max(
        float((a - b).abs().max())
        for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
    require(
        restored,
        "load_checkpoint does not restore the optimizer: "
        "optimizer.load_state_dict(checkpoint['optimizer'])",
    )
    require(
        difference < 1e-6,
        f"the resumed run's weights differ from the uninterrupted run's by {difference:.2e}: "
        "load_checkpoint must restore model.load_state_dict(...) and "
        "optimizer.load_state_dict(...) from the file",
    )


@needs(saves_state_dicts)
def returns_epoch(exercise) -> None:
    """load_checkpoint returns the epochs completed that the checkpoint stored"""
    with saved(exercise, epoch=7) as (path, _, _):
        model = small_model(seed=0)
        epoch = exercise.load_checkpoint(path, model, adam(model), torch.device("cpu"))
    require(
        not isinstance(epoch, dict),
        "load_checkpoint returned the whole checkpoint (a dict): return checkpoint['epoch'], the "
        "number of epochs completed",
    )
    require(
        epoch != 8,
        "saved with epoch=7, load_checkpoint returned 8: the checkpoint stores the epochs "
        "completed (7), and the loop resumes with range(completed, epochs), whose first epoch "
        "is the 8th; adding 1 skips one epoch; return checkpoint['epoch'] as it is",
    )
    require(
        epoch == 7,
        f"saved with epoch=7, load_checkpoint returned {shown(epoch)}: store the epoch in the "
        "checkpoint and return it, so the loop continues with the next one",
    )


@contextlib.contextmanager
def saved_as_on_a_gpu():
    """While active, torch.save tags every CPU tensor's storage 'cuda:0', as if it had been saved
    on a GPU: loading such a file on a machine without CUDA needs map_location, exactly as for a
    checkpoint brought from a GPU machine. (A location tagger registered first, then removed.)"""

    def tagger(storage):
        return "cuda:0" if storage.device.type == "cpu" else None

    def deserializer(obj, location):
        return None  # leave loading to torch's own cpu / cuda rules

    torch.serialization.register_package(-100, tagger, deserializer)
    try:
        yield
    finally:
        registry = torch.serialization._package_registry
        registry[:] = [entry for entry in registry if entry[1] is not tagger]


@needs(saves_state_dicts)
def loads_with_map_location(exercise) -> None:
    """load_checkpoint maps a GPU checkpoint's tensors to the given device (map_location)"""
    calls = []
    real_load = torch.load

    def watched_load(*args, **kwargs):
        calls.append(inspect.signature(real_load).bind(*args, **kwargs).arguments)
        return real_load(*args, **kwargs)

    model = small_model(seed=0)
    optimizer = adam(model)
    train_steps(model, optimizer, steps=3, seed=1)
    loaded = small_model(seed=99)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "from_gpu.pt"
        with saved_as_on_a_gpu():
            exercise.save_checkpoint(path, model, optimizer, 1)
        torch.load = watched_load  # watched: on a GPU machine, cuda:0 would load without error
        try:
            exercise.load_checkpoint(path, loaded, adam(loaded), torch.device("cpu"))
        except RuntimeError as error:
            if "CUDA device" not in str(error):
                raise
            if not (calls and calls[-1].get("map_location")):  # else: judged below ('cuda')
                calls.append({})  # torch's own error: map_location was missing
        finally:
            torch.load = real_load
    require(calls, "load_checkpoint never called torch.load(path, map_location=device)")
    arguments = calls[-1]
    require(
        arguments.get("map_location") is not None,
        "torch.load without map_location: this checkpoint was saved on a GPU (its tensors are "
        "cuda:0), and a CPU-only machine fails to load it ('Attempting to deserialize object on "
        "a CUDA device'): torch.load(path, map_location=device)",
    )
    location = arguments["map_location"]
    require(
        str(location) == "cpu" or callable(location) or isinstance(location, dict),
        f"map_location={location!r}, but the device asked for was 'cpu': pass the device given "
        "to load_checkpoint",
    )
    require(
        arguments.get("weights_only") is not False,
        "weights_only=False: loading would run any code pickled into the file; checkpoints of "
        "state_dicts load with weights_only=True",
    )
    require(
        all(
            torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
        ),
        "after load_checkpoint the model's weights differ from the saved ones: "
        "model.load_state_dict(checkpoint['model'])",
    )


def handles_missing_file(exercise) -> None:
    """load_checkpoint starts from epoch 0 when there is no checkpoint yet"""
    model = small_model(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoints" / "last.pt"
        try:
            epoch = exercise.load_checkpoint(path, model, adam(model), torch.device("cpu"))
        except (FileNotFoundError, OSError) as error:
            raise Mistake(
                f"load_checkpoint crashed on a missing file ({type(error).__name__}): check "
                "Path(path).exists() first, and return 0 to start from the beginning"
            ) from None
    require(
        epoch == 0,
        f"no checkpoint, yet load_checkpoint returned {shown(epoch)}: return 0 (start from "
        "scratch), so the loop's range(start, epochs) begins at the first epoch",
    )
    require(
        all(torch.equal(before[k], v) for k, v in model.state_dict().items()),
        "no checkpoint, yet the model's weights changed",
    )


CHECKS = [
    creates_folder,
    saves_state_dicts,
    resumes_exactly,
    returns_epoch,
    loads_with_map_location,
    handles_missing_file,
]
