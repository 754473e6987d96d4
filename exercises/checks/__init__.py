"""What every exercise checker shares: the ``Mistake`` a check raises, and the exercise loader.

A checker is a module ``exercises/checks/check_NN_<name>.py`` that defines ``CHECKS``: a list of
functions, each taking the learner's module (loaded from a file by ``load_exercise``) and raising
``Mistake("what is wrong: what to do, and where")`` when it finds a mistake. The first line of each
check's docstring is its title in the runner's output. Optional module attributes:

    SLOW = True        the checker trains for real (tests mark it slow)
    MUTANTS = [...]    (old, new, expected words): broken copies of the solution that a check
                       must catch with a message containing the expected words (tests run them)
    REQUIRES_FILES = {check name: (paths)}: a check that needs files made on request (e.g.
                       ``make challenge-data``); tests run it where they exist, never on mutants

A check that passes may return a short note (a str) that the runner prints after ``ok``. An error
of PyTorch's own that a known mistake causes is named by ``explain`` (the runner prints that
explanation instead of the error's own text). A check marked ``@needs(...)`` is skipped, with one
line, once a check it needs has failed: it could not pass, or would blame code that is right.

Run a checker with ``python -m exercises.check N`` (or ``make exercise N=1``).
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType

_counter = itertools.count()


class Mistake(Exception):
    """A mistake the checker found in the learner's code; the message says what and where."""


def load_exercise(path: str | Path) -> ModuleType:
    """Import a Python file as a module (exercise files start with a digit, so no plain import).

    Each call loads the file afresh under a unique name, so a learner's edit is always seen and
    two versions of one exercise (the attempt and the solution) never share state.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"exercise file not found: {path}")
    name = f"exercise_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs: dataclasses and DataLoader workers look modules up by name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def require(condition: bool, message: str) -> None:
    """Raise ``Mistake(message)`` unless ``condition`` holds."""
    if not condition:
        raise Mistake(message)


def needs(*checks):
    """Mark a check that cannot pass, or would blame code that is right, once one of ``checks``
    failed: the runner then skips it with one line ("skipped: fix the failing check above
    first"). With no checks named it needs every check before it (a real training run that is
    slow, or that only says "does not learn" where an earlier check names the cause)."""

    def mark(check):
        check.needs = tuple(c.__name__ for c in checks)  # (): every check before it
        return check

    return mark


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 step``, ``3 steps`` (``words``: an irregular plural)."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def mean_loss(
    got: float,
    losses: list[tuple[float, int]],
    batch_size: int,
    what: str,
    tolerance: float = 1e-5,
) -> None:
    """A Mistake naming the average ``got`` is when it is not the mean per image of ``losses``
    ((batch mean, batch size) per batch, the last batch smaller); ``what`` says whose value it
    is ("train_one_epoch returned"). The checker knows the exact value of each usual wrong
    average: each differs from the right one by 1e-2 or more, far above float32 rounding."""
    images, batch_sum = sum(n for _, n in losses), sum(value * n for value, n in losses)
    expected = batch_sum / images
    if abs(got - expected) < tolerance:
        return
    last = losses[-1][1]
    wrong = {
        sum(value for value, _ in losses) / len(losses): (
            f"the mean of the batch means counts the last batch ({last} images, not "
            f"{batch_size}) as much as a full one; add loss.item() * labels.shape[0] per batch "
            "and divide by the number of images"
        ),
        batch_sum / len(losses): (
            "the sum over the images was divided by the number of batches; divide by the number "
            "of images"
        ),
        batch_sum / (batch_size * len(losses)): (
            f"batch_size images were counted for every batch, but the last batch has only "
            f"{last}; count labels.shape[0] per batch"
        ),
        sum(value for value, _ in losses) / images: (
            "the batch means (loss.item() without the batch size) were added up and divided by "
            "the number of images; add loss.item() * labels.shape[0] per batch"
        ),
    }
    for value, mistake in wrong.items():
        if abs(got - value) < tolerance:
            raise Mistake(
                f"{what} {got:.5f}, expected the mean loss per image {expected:.5f}: {mistake}"
            )
    raise Mistake(
        f"{what} {got:.5f}, expected the mean loss of the epoch "
        f"{expected:.5f}: add loss.item() x batch size per batch, divide by the image count"
    )


# PyTorch's own errors that a known mistake causes: (pattern of the error's text, what to say).
# The runner puts the explanation first, then the error itself and where it happened.
KNOWN_ERRORS = [
    (
        r"modified by an inplace operation",
        "an in-place operation (x += ..., x.clamp_(...), x[...] = ...) changed a tensor that "
        "backward() still needed: write it out of place (x = x + ...); "
        "torch.autograd.set_detect_anomaly(True) names the operation",
    ),
    (
        r"backward through the graph a second time",
        "backward() went twice through one batch's graph: a loss tensor kept across batches "
        "(running = running + loss, then running.backward()); call backward() on this batch's "
        "loss only and add up loss.item()",
    ),
    (
        r"does not require grad and does not have a grad_fn",
        "the loss has no graph to go back through: it was computed under torch.no_grad() or "
        "from .item() / .detach(); compute it from model(images) with gradients on",
    ),
    (
        r'Unexpected key\(s\) in state_dict: "model"',
        "load_state_dict got the whole checkpoint (a dict of 'model', 'optimizer', 'epoch'): "
        "pass the part it saved, model.load_state_dict(checkpoint['model'])",
    ),
    (
        r'Missing key\(s\) in state_dict: "fc\.weight", "fc\.bias"\.\s*$',
        "the weights file has no fc (the old head was left out on purpose), and a strict load "
        "wants every key: load_state_dict(state, strict=False), and check that only fc is missing",
    ),
    (
        r"Tried to step \d+ times\. The specified number of total steps is",
        "the LR schedule ran out of steps: scheduler.step() runs once per batch, so OneCycleLR "
        "needs total_steps=epochs * steps_per_epoch (not epochs)",
    ),
    (
        r"img should be Tensor Image\. Got <class 'PIL",
        "Normalize got a PIL image: it computes on tensors, so it comes after ToTensor() in the "
        "Compose (Resize, ToTensor, Normalize)",
    ),
    (
        r"Weights only load failed",
        "torch.load(weights_only=True) refused the file: it holds pickled Python objects (the "
        "whole model, or model.state_dict without its parentheses), not only tensors; save "
        "model.state_dict() and optimizer.state_dict() (save_checkpoint)",
    ),
    (
        r"Attempting to deserialize object on a CUDA device",
        "the file was saved on a GPU (its tensors are cuda:0) and this machine has none: "
        "torch.load(path, map_location=device)",
    ),
    (
        r"expected 'f' to be string, path, or a file-like object",
        "torch.save got its arguments the other way round: torch.save(checkpoint, path), what to "
        "save first, then where",
    ),
    (
        r"log_softmax.* not implemented for 'Long'",
        "F.cross_entropy got the labels first: the order is F.cross_entropy(logits, labels), the "
        "model's output first",
    ),
    (
        r"Expected all tensors to be on the same device",
        "the batch and the model are on different devices: images = images.to(device) and "
        "labels = labels.to(device) before using them",
    ),
    (
        r"File exists",
        "creating a folder that exists already failed: the second checkpoint of a run goes into "
        "the same folder; path.parent.mkdir(parents=True, exist_ok=True)",
    ),
]


def explain(error: BaseException) -> str | None:
    """What a known mistake behind ``error`` is, or None when it is none of the known ones."""
    text = str(error)
    for pattern, explanation in KNOWN_ERRORS:
        if re.search(pattern, text, flags=re.MULTILINE):
            return explanation
    return None
