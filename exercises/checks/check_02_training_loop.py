"""Checker of exercise 2 (the training loop): ``python -m exercises.check 2``.

Every check runs the learner's ``train_one_epoch`` / ``evaluate`` on a small network and small
batches built here, and watches what happens rather than reading the code:

- the batches are a tensor type that refuses to be used before ``.to(device)`` (on a CPU-only
  machine a forgotten ``.to(device)`` would otherwise go unnoticed until the first GPU run);
- the network records, at every call, whether it was in train or eval mode and whether autograd was
  recording, and its BatchNorm reveals validation in train mode by changing its running statistics;
- hooks on the parameters and the optimizer record the order of backward() and step(), and the
  gradients each step used are compared with the gradients of that batch alone (a reference step),
  and with those of known wrong losses (softmax fed to cross_entropy, a sum over the batch);
- a returned loss that is a tensor still attached to the autograd graph is named as such.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from exercises.checks import Mistake, mean_loss, needs, plural, require

CLASSES = 4
FEATURES = 6


# ----------------------------------------------------------------------------- the test bench


class Unmoved(torch.Tensor):
    """A batch tensor as the DataLoader hands it over: any use before ``.to(device)`` is a
    Mistake. ``.to()`` / ``.cuda()`` return an ordinary tensor; shape questions are allowed."""

    role = "batch"
    allowed = {"__get__", "__len__", "size", "dim", "numel", "__repr__", "__format__"}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", repr(func))
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **(kwargs or {}))
        if name in ("to", "cuda"):
            args[0].copied = True  # a moved copy was made: was it kept?
            return result.as_subclass(torch.Tensor) if isinstance(result, torch.Tensor) else result
        if name in cls.allowed:
            return result
        if any(getattr(arg, "copied", False) for arg in args if isinstance(arg, Unmoved)):
            raise Mistake(
                f"{cls.role}.to(device) was called, but its result was thrown away, and the "
                f"{cls.role} reached {name}() where they were: .to() returns a moved copy, it "
                f"does not move the tensor in place; {cls.role} = {cls.role}.to(device)"
            )
        raise Mistake(
            f"the {cls.role} reached {name}() without moving to the model's device (device "
            f"mismatch on a GPU): {cls.role} = {cls.role}.to(device) before using them"
        )


class UnmovedImages(Unmoved):
    role = "images"


class UnmovedLabels(Unmoved):
    role = "labels"


class Batches:
    """A DataLoader stand-in: fixed batches (the last one smaller), ``.dataset`` and ``len()``,
    and ``current``: the index of the batch the learner's loop is on."""

    def __init__(self, sizes=(4, 4, 2), seed=0, unmoved=True):
        generator = torch.Generator().manual_seed(seed)
        total = sum(sizes)
        images = torch.randn(total, FEATURES, generator=generator)
        labels = torch.randint(0, CLASSES, (total,), generator=generator)
        self.dataset = torch.utils.data.TensorDataset(images, labels)
        self.batch_size = sizes[0]
        self.plain = list(zip(images.split(list(sizes)), labels.split(list(sizes)), strict=True))
        self.unmoved = unmoved
        self.current = -1

    def __len__(self) -> int:
        return len(self.plain)

    def __iter__(self):
        for index, (images, labels) in enumerate(self.plain):
            self.current = index
            if self.unmoved:
                yield (
                    images.clone().as_subclass(UnmovedImages),
                    labels.clone().as_subclass(UnmovedLabels),
                )
            else:
                yield images.clone(), labels.clone()


class Probe(nn.Module):
    """A small classifier that remembers the mode and grad mode of every call."""

    def __init__(self, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(16, CLASSES),
        )
        self.calls: list[tuple[bool, bool]] = []  # (training, grad enabled) per call

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.layers(images)


class Recorder:
    """Hooks that log, in order, each parameter's gradient arriving (backward) and each
    optimizer step with the gradients it is about to use and the batch it happened in."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches):
        self.events: list[tuple[str, int]] = []
        self.steps: list[dict] = []
        self.model, self.batches = model, batches
        first = next(model.parameters())
        first.register_post_accumulate_grad_hook(lambda _: self.on_backward())
        optimizer.register_step_pre_hook(lambda *_: self.on_step())

    def on_backward(self) -> None:
        self.events.append(("backward", self.batches.current))

    def on_step(self) -> None:
        index = self.batches.current
        after_backward = ("backward", index) in self.events  # this batch's backward() ran
        self.events.append(("step", index))
        grads = [None if p.grad is None else p.grad.clone() for p in self.model.parameters()]
        # The reference: the gradient of this batch alone, at these weights, in this mode.
        reference = copy.deepcopy(self.model)
        reference.zero_grad(set_to_none=True)
        images, labels = self.batches.plain[index]
        F.cross_entropy(reference(images), labels).backward()
        expected = [p.grad.clone() for p in reference.parameters()]
        self.steps.append(
            {"batch": index, "grads": grads, "expected": expected, "after": after_backward}
        )


def close(a, b) -> bool:
    return all(x is not None and torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))


def attached(value, function: str) -> None:
    """A Mistake when ``value`` (a returned loss) is a tensor still attached to a graph."""
    if torch.is_tensor(value) and value.requires_grad:
        raise Mistake(
            f"{function} returned a loss that is still attached to the autograd graph "
            f"(grad_fn={type(value.grad_fn).__name__}): adding up loss tensors keeps a reference "
            "to every batch's graph (memory grows with each batch); add loss.item(), a float"
        )


# Losses that learners write instead of F.cross_entropy(logits, labels), and what to say.
WRONG_LOSSES = {
    "softmax fed to cross_entropy": (
        lambda logits, labels: F.cross_entropy(F.softmax(logits, dim=1), labels),
        "softmax was applied before F.cross_entropy, which applies log_softmax itself: the "
        "loss of probabilities is squashed and its gradients shrink; give cross_entropy the raw "
        "logits (train_one_epoch)",
    ),
    "a sum over the batch": (
        lambda logits, labels: F.cross_entropy(logits, labels, reduction="sum"),
        "the training loss is summed over the batch (reduction='sum'): its gradients grow with "
        "the batch size, and so does the real step size; keep the default mean in "
        "train_one_epoch (the sum is for evaluate's totals)",
    ),
    "raw logits fed to nll_loss": (
        lambda logits, labels: F.nll_loss(logits, labels),
        "F.nll_loss got raw logits: it expects log-probabilities; use "
        "F.cross_entropy(logits, labels), which is log_softmax + nll_loss (train_one_epoch)",
    ),
}


def run_epoch(exercise, model=None, batches=None, lr=0.1):
    """One learner epoch with plain SGD (a step is then exactly lr x gradient)."""
    model = model or Probe()
    batches = batches or Batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    recorder = Recorder(model, optimizer, batches)
    loss = exercise.train_one_epoch(model, batches, optimizer, torch.device("cpu"))
    return model, recorder, loss


# ----------------------------------------------------------------------------- the checks


def moves_batches_to_device(exercise) -> None:
    """inputs and targets go to the model's device (train_one_epoch and evaluate)"""
    run_epoch(exercise)
    exercise.evaluate(Probe(), Batches(), torch.device("cpu"))


def trains_in_train_mode(exercise) -> None:
    """train_one_epoch switches the model to train mode"""
    model = Probe(dropout=0.5)
    model.eval()  # as evaluate() leaves it
    run_epoch(exercise, model=model, batches=Batches(unmoved=False))  # devices: the check above
    require(
        model.calls, "train_one_epoch never called the model on a batch: logits = model(images)"
    )
    require(
        all(training for training, _ in model.calls),
        "training ran in eval mode (dropout off, BatchNorm frozen): call model.train() at the "
        "start of train_one_epoch, because evaluate() leaves the model in eval mode",
    )


def loss_of_raw_logits(exercise) -> None:
    """each batch's loss is F.cross_entropy of the raw logits, the mean over the batch"""
    start = Probe()
    batches = Batches(unmoved=False)
    _, recorder, _ = run_epoch(exercise, model=copy.deepcopy(start), batches=batches, lr=0.0)
    if not recorder.steps or recorder.steps[0]["grads"][0] is None:
        return  # no step, or a step before backward: the other checks say so
    used = recorder.steps[0]["grads"]  # the first step: nothing can have accumulated yet
    if close(used, recorder.steps[0]["expected"]):
        return
    images, labels = batches.plain[0]
    for wrong, message in WRONG_LOSSES.values():
        reference = copy.deepcopy(start)
        wrong(reference(images), labels).backward()
        if close(used, [p.grad for p in reference.parameters()]):
            raise Mistake(message)
    raise Mistake(
        "the first step's gradients are not those of F.cross_entropy(model(images), labels) on "
        "its batch: one loss per batch, from the raw logits, the mean over the batch"
    )


def zero_grad_before_backward(exercise) -> None:
    """each step uses the gradients of its own batch only"""
    _, recorder, _ = run_epoch(exercise, batches=Batches(unmoved=False))
    steps = recorder.steps
    require(steps, "train_one_epoch never called optimizer.step(): the weights do not change")
    never_backward(recorder)
    batch_count = plural(len(recorder.batches), "batch", "batches")
    require(
        len(steps) == len(recorder.batches),
        f"{plural(len(steps), 'optimizer step')} for {batch_count}: one step per batch, inside "
        "the loop",
    )
    zeroed = (
        "optimizer.step() saw zero gradients: zero_grad() ran between backward() and "
        "step(); the order is zero_grad(), forward, loss, backward(), step()"
    )
    for previous, step in zip([None, *steps], steps, strict=False):
        # No gradients after this batch's backward(): zero_grad() (set_to_none) came between.
        require(step["grads"][0] is not None or not step["after"], zeroed)
        if step["grads"][0] is None or close(step["grads"], step["expected"]):
            continue  # None: step before backward, the next check's business
        if previous is not None and close(
            step["grads"],
            [g + e for g, e in zip(previous["grads"], step["expected"], strict=True)],
        ):
            raise Mistake(
                "gradients accumulate across steps: call optimizer.zero_grad() before "
                "loss.backward() in every iteration (train_one_epoch)"
            )
        require(any(float(g.abs().max()) > 0 for g in step["grads"]), zeroed)
        raise Mistake(
            f"the gradients at step {step['batch'] + 1} are not those of "
            f"F.cross_entropy(model(images), labels).backward() on that batch: "
            "one loss per batch, mean over the batch"
        )


def never_backward(recorder: Recorder) -> None:
    """A Mistake when the epoch had optimizer steps but no backward() at all."""
    require(
        any(kind == "backward" for kind, _ in recorder.events) or not recorder.steps,
        "loss.backward() was never called: without gradients optimizer.step() changes nothing "
        "(train_one_epoch)",
    )


def step_after_backward(exercise) -> None:
    """optimizer.step() comes after loss.backward()"""
    _, recorder, _ = run_epoch(exercise, batches=Batches(unmoved=False))
    never_backward(recorder)
    seen_backward: set[int] = set()
    for kind, batch in recorder.events:
        if kind == "backward":
            seen_backward.add(batch)
        elif batch not in seen_backward:
            raise Mistake(
                f"optimizer.step() ran before loss.backward() in batch {batch + 1}: the update "
                "used no gradients or the previous batch's; call step() after backward()"
            )
    require(recorder.steps, "train_one_epoch never called optimizer.step()")


def returns_mean_training_loss(exercise) -> None:
    """train_one_epoch returns the epoch's mean loss"""
    batches = Batches(unmoved=False)
    start = Probe()
    # lr=0: the weights stay put, so the expected losses do not depend on how the loop updates
    # them (other checks judge that); only on what it adds up and returns.
    _, _, loss = run_epoch(exercise, model=copy.deepcopy(start), batches=batches, lr=0.0)
    start.train()
    with torch.no_grad():
        losses = [
            (F.cross_entropy(start(images), labels).item(), len(labels))
            for images, labels in batches.plain
        ]
    attached(loss, "train_one_epoch")
    require(
        isinstance(loss, float | int) or (torch.is_tensor(loss) and loss.numel() == 1),
        f"train_one_epoch returned {type(loss).__name__}: return the mean loss as a float "
        "(loss.item() per batch)",
    )
    mean_loss(float(loss), losses, batches.batch_size, "train_one_epoch returned")


def evaluates_in_eval_mode(exercise) -> None:
    """evaluate switches the model to eval mode"""
    model = Probe(dropout=0.5)
    model.train()  # as train_one_epoch leaves it
    before = model.layers[1].running_mean.clone()
    exercise.evaluate(model, Batches(unmoved=False), torch.device("cpu"))
    require(model.calls, "evaluate never called the model on a batch: logits = model(images)")
    changed = not torch.equal(before, model.layers[1].running_mean)
    require(
        not any(training for training, _ in model.calls) and not changed,
        "validation ran in train mode (dropout dropped activations and BatchNorm updated its "
        "running statistics from validation data): call model.eval() at the start of evaluate "
        "(with its parentheses: model.eval alone does nothing)",
    )


def evaluates_without_grad(exercise) -> None:
    """evaluate builds no autograd graph"""
    model = Probe()
    exercise.evaluate(model, Batches(unmoved=False), torch.device("cpu"))
    require(
        not any(grad for _, grad in model.calls),
        "validation recorded an autograd graph (memory and time for nothing): run evaluate's "
        "loop under `with torch.no_grad():` or decorate it with @torch.no_grad() (a bare "
        "torch.no_grad() call on a line of its own does nothing)",
    )


def accuracy_over_images(exercise) -> None:
    """evaluate's loss and accuracy count every image once (batch dimension 0, classes dim 1)"""
    model, batches = Probe(), Batches(sizes=(4, 4, 2), seed=1, unmoved=False)
    model.eval()
    with torch.no_grad():
        images, labels = batches.dataset.tensors
        logits = model(images)
        loss = F.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        outputs = [(model(x), y) for x, y in batches.plain]
        per_batch = [(out.argmax(dim=1) == y).float().mean().item() for out, y in outputs]
        losses = [(F.cross_entropy(out, y).item(), len(y)) for out, y in outputs]
    try:
        result = exercise.evaluate(model, batches, torch.device("cpu"))
    except RuntimeError as error:
        if "size of tensor" not in str(error):
            raise
        raise Mistake(
            f"wrong batch dimension ({error}): logits are (batch, classes), so the predictions "
            "are logits.argmax(dim=1), one per image"
        ) from None
    require(
        isinstance(result, tuple) and len(result) == 2,
        "evaluate must return a tuple (mean loss, accuracy)",
    )
    attached(result[0], "evaluate")
    got_loss, got_accuracy = (float(value) for value in result)
    require(
        not (abs(got_loss - accuracy) < 1e-6 and abs(got_accuracy - loss) < 1e-5),
        f"evaluate returned ({got_loss:.4f}, {got_accuracy:.4f}): the accuracy first, then the "
        "loss; return (mean loss, accuracy), the order the callers unpack",
    )
    batch_mean = sum(per_batch) / len(per_batch)
    require(
        abs(got_accuracy - batch_mean) > 1e-6 or abs(batch_mean - accuracy) < 1e-6,
        f"accuracy {got_accuracy:.4f}, expected {accuracy:.4f}: the mean of the batch "
        f"accuracies counts the last batch ({len(batches.plain[-1][1])} images) as much as a "
        "full one; add up the correct predictions and divide by the number of images",
    )
    require(
        abs(got_accuracy - accuracy) < 1e-6,
        f"accuracy {got_accuracy:.4f}, expected {accuracy:.4f}: predictions are "
        "logits.argmax(dim=1) (dim 0 is the batch); divide the correct count by the number of "
        "images, not of batches (the last batch is smaller)",
    )
    mean_loss(got_loss, losses, batches.batch_size, "evaluate's mean loss is")


@needs()  # every check above: a loop with a named mistake is fixed first
def learns(exercise) -> None:
    """train_one_epoch and evaluate together learn a simple problem"""
    generator = torch.Generator().manual_seed(3)
    centers = torch.randn(CLASSES, FEATURES, generator=generator) * 3
    labels = torch.arange(CLASSES).repeat(40)
    images = centers[labels] + torch.randn(len(labels), FEATURES, generator=generator)
    dataset = torch.utils.data.TensorDataset(images, labels)
    train, val = torch.utils.data.random_split(dataset, [120, 40], generator=generator)
    train_loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=16)
    torch.manual_seed(0)
    model = Probe(dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(5):
        exercise.train_one_epoch(model, train_loader, optimizer, torch.device("cpu"))
    _, accuracy = exercise.evaluate(model, val_loader, torch.device("cpu"))
    require(
        float(accuracy) >= 0.9,
        f"after 5 epochs on 4 well separated clusters the validation accuracy is only "
        f"{float(accuracy):.2f} (expected >= 0.9): the loop does not learn",
    )


CHECKS = [
    moves_batches_to_device,
    trains_in_train_mode,
    loss_of_raw_logits,
    zero_grad_before_backward,
    step_after_backward,
    returns_mean_training_loss,
    evaluates_in_eval_mode,
    evaluates_without_grad,
    accuracy_over_images,
    learns,
]
