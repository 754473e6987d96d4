"""Checker of exercise 4 (the transfer-learning challenge): ``python -m exercises.check 4``.

The challenge's criteria, each checked on what the learner's functions do:

- the model is torchvision's ResNet18 with a new 10-class ``fc``, and only ``fc`` requires grad;
- the weights come from the file: a weights file written here with known values (every
  ``conv1`` weight 0.0123) must show up in the backbone;
- the optimizer holds the trainable parameters only, and its LR falls per the schedule;
- one real training epoch on small random images (batches of 8, 8 and 4): the forward pass runs
  under autocast, the LR moves every batch and the scheduler steps after the optimizer, each step
  uses the gradients of its own batch (hooks on the head's weight), the head learns while every
  backbone tensor (BatchNorm running statistics included) stays as loaded, and the returned loss
  is the mean per image, a number, not a tensor still attached to the autograd graph;
- ``fit`` keeps the best epoch: with the validation accuracies scripted to 0.5, 0.8, 0.7, the
  checkpoint file must hold the weights of the second epoch (``torch.save`` is watched, to name a
  best ``state_dict()`` kept by reference and saved after the last epoch); ``make_optimizer`` is
  watched too (called once, with the batches per epoch), and ``evaluate`` gets the val loader;
- the real run, ``run_challenge()`` on data/glyphs (``make challenge-data``), ends above 85%. It
  takes seconds for a right attempt and up to half an hour for one that trains the whole network,
  so it runs only once every check above passes (``@needs()``).
"""

from __future__ import annotations

import pickle
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import ResNet, resnet18

from exercises.checks import Mistake, mean_loss, needs, plural, require
from project.core import threads as cpu_threads

SLOW = True  # the last check trains for real (about 20 s)
KNOWN = 0.0123  # every conv1 weight in the checker's weights file
CLASSES = 10
ROOT = Path(__file__).resolve().parents[2]
GLYPHS = ROOT / "data" / "glyphs"
CHALLENGE_DATA, CHALLENGE_WEIGHTS = GLYPHS / "digits" / "k20_seed0", GLYPHS / "source_resnet18.pth"
TARGET = 0.85


def weights_file(folder: str) -> Path:
    """A ResNet18 backbone file (no fc, like data/glyphs/source_resnet18.pth) with known conv1."""
    torch.manual_seed(7)
    state = {
        k: v for k, v in resnet18(weights=None).state_dict().items() if not k.startswith("fc.")
    }
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], KNOWN)
    path = Path(folder) / "backbone.pth"
    torch.save(state, path)
    return path


def built(exercise) -> nn.Module:
    with tempfile.TemporaryDirectory() as folder:
        model = exercise.build_model(CLASSES, weights_file(folder))
    require(isinstance(model, ResNet), f"build_model returned a {type(model).__name__}: "
            "return the ResNet18 itself, from torchvision.models.resnet18")  # fmt: skip
    return model


def frozen_resnet() -> nn.Module:
    """The checker's own frozen ResNet18 with a new head: the optimizer, epoch and fit checks use
    it, so each of the learner's functions is checked on its own."""
    torch.manual_seed(3)
    model = resnet18(weights=None)
    model.requires_grad_(False)
    model.fc = nn.Linear(model.fc.in_features, CLASSES)
    return model


def images(count: int = 24, size: int = 8, seed: int = 0) -> DataLoader:
    """``count`` random 32 x 32 images with labels, in batches of ``size`` (the last smaller)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 3, 32, 32, generator=generator)
    y = torch.randint(0, CLASSES, (count,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=size)


def head_is_the_only_trainable_layer(exercise) -> None:
    """a new 10-class fc is the only layer that requires grad (the backbone is frozen)"""
    model = built(exercise)
    require(
        isinstance(model.fc, nn.Linear) and model.fc.out_features == CLASSES,
        f"model.fc has {getattr(model.fc, 'out_features', '?')} outputs, the task has {CLASSES} "
        "classes: replace it, model.fc = nn.Linear(model.fc.in_features, num_classes)",
    )
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    require(
        trainable,
        "no parameter requires grad, not even the new fc's: the freezing loop ran after "
        "model.fc was replaced; freeze the backbone first, then add the new fc (build_model)",
    )
    require(
        trainable == ["fc.bias", "fc.weight"],
        f"{plural(len(trainable), 'tensor')} require grad ({', '.join(trainable[:3])}...), only "
        "fc's two should: freeze the backbone (requires_grad = False) before adding the new fc",
    )


def loads_the_weights_file(exercise) -> None:
    """the backbone's weights come from the weights file"""
    conv1 = built(exercise).conv1.weight
    require(
        torch.all(conv1 == KNOWN).item(),
        "conv1's weights are not the file's: load it, model.load_state_dict(torch.load(file, "
        "map_location='cpu', weights_only=True), strict=False)",
    )


def lrs_of(optimizer, scheduler, steps: int) -> list[float]:
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping without gradients: nothing changes
        for _ in range(steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return lrs


def optimizer_and_schedule(exercise) -> None:
    """the optimizer holds the head only, and the LR falls per the schedule"""
    model = frozen_resnet()
    optimizer, scheduler = exercise.make_optimizer(model, 4, 5)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    require(
        held == {id(model.fc.weight), id(model.fc.bias)},
        f"the optimizer holds {plural(len(held), 'tensor')}: give it the trainable ones only, "
        "[p for p in model.parameters() if p.requires_grad]",
    )
    lrs = lrs_of(optimizer, scheduler, 20)
    peak = lrs.index(max(lrs))
    require(
        lrs[-1] < max(lrs) / 2,
        f"the LR went from {lrs[0]:.3g} to {lrs[-1]:.3g} over 20 steps: no schedule; use e.g. "
        "OneCycleLR(optimizer, max_lr, total_steps=epochs * steps_per_epoch)",
    )
    require(
        all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False)),
        "after its peak the LR rises again: a schedule sized in epochs (CosineAnnealingLR("
        "T_max=epochs), StepLR) but stepped every batch runs past its end and cycles; size it "
        "in batches, epochs * steps_per_epoch, and it anneals to the end",
    )


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def step_gradients(used: list, incoming: list) -> None:
    """A Mistake when the optimizer's steps (``used``: the head's .grad at each step) did not use
    the gradient of their own batch (``incoming``: what each backward() brought)."""
    if used and all(g is None or not g.any() for g in used):
        require(incoming, "loss.backward() was never called: no gradients, nothing learns")
        raise Mistake(
            "optimizer.step() found no gradients: zero_grad() ran between backward() and step(); "
            "the order is zero_grad(), forward and loss, backward(), step() (train_one_epoch)"
        )
    if len(used) != len(incoming):
        return
    for k in range(1, len(used)):
        if used[k] is None or close(used[k], incoming[k]):
            continue
        if close(used[k], sum(incoming[: k + 1])):
            raise Mistake(
                f"the step of batch {k + 1} used the gradients of batches 1 to {k + 1} added up: "
                "gradients accumulate until cleared; call optimizer.zero_grad() in every "
                "iteration, before backward() (train_one_epoch)"
            )


def training_epoch(exercise) -> None:
    """an epoch runs under autocast, steps the schedule per batch and trains the head alone"""
    model = frozen_resnet()
    before, head = backbone_state(model), model.fc.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.fc.parameters(), lr=0.01)  # the checker's own
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=6)
    loader = images(count=20)  # batches of 8, 8 and 4
    seen = {"autocast": [], "cuda_autocast": [], "lrs": [], "used": [], "incoming": []}
    outputs = []

    def on_forward(*_):
        seen["autocast"].append(torch.is_autocast_enabled("cpu"))
        seen["cuda_autocast"].append(torch.is_autocast_enabled("cuda"))

    def on_step(*_):
        seen["lrs"].append(optimizer.param_groups[0]["lr"])
        grad = model.fc.weight.grad
        seen["used"].append(None if grad is None else grad.detach().clone())

    model.fc.register_forward_hook(on_forward)
    model.register_forward_hook(lambda _, __, output: outputs.append(output.detach().float()))
    model.fc.weight.register_hook(lambda grad: seen["incoming"].append(grad.detach().clone()))
    optimizer.register_step_pre_hook(on_step)
    with warnings.catch_warnings(record=True) as caught:  # judged below, not shown to the learner
        warnings.simplefilter("always")
        loss = exercise.train_one_epoch(model, loader, optimizer, scheduler, torch.device("cpu"))
    require(seen["autocast"], "train_one_epoch never called the model")
    cuda_on_cpu = any("CUDA is not available" in str(w.message) for w in caught)
    require(
        all(seen["autocast"]) or not (cuda_on_cpu or any(seen["cuda_autocast"])),
        "the autocast was for 'cuda' while the model runs on the CPU, so the CPU ran without "
        "mixed precision: torch.autocast(device.type, dtype=...) follows the model's device "
        "(bfloat16 on a CPU)",
    )
    require(
        all(seen["autocast"]),
        "the forward pass ran without autocast, so no mixed precision: wrap the model call and "
        "the loss in with torch.autocast(device.type, dtype=torch.bfloat16):",
    )
    require(
        not any("lr_scheduler.step()` before `optimizer.step()" in str(w.message) for w in caught),
        "scheduler.step() ran before optimizer.step(): the first LR of the schedule is skipped; "
        "step the optimizer first",
    )
    lrs = seen["lrs"]
    require(
        len(lrs) < 2 or len(set(lrs)) > 1,
        f"the LR stayed {lrs[0]:.3g} for all {len(lrs)} steps of the epoch: call "
        "scheduler.step() once per batch, inside the loop after optimizer.step() (a OneCycleLR "
        "of epochs * steps_per_epoch steps stepped once per epoch, or never, does not move "
        "within an epoch)"
        if lrs
        else "",
    )
    require(
        len(set(lrs)) == len(lrs) == 3,
        f"the LR of the 3 steps was {lrs}: call scheduler.step() once per batch, after "
        "optimizer.step()",
    )
    step_gradients(seen["used"], seen["incoming"])
    require(not torch.equal(head, model.fc.weight), "an epoch left the head unchanged")
    changed = [k for k, v in backbone_state(model).items() if not torch.equal(before[k], v)]
    stats = [k for k in changed if "running_" in k or "num_batches" in k]
    if stats:
        raise Mistake(
            f"the frozen backbone changed: {stats[0]} (and {len(stats) - 1} more) moved, "
            "BatchNorm updates its statistics in train mode; use model.eval(), then "
            "model.fc.train()"
        )
    require(not changed, f"the frozen backbone's {changed[:2]} changed during training")
    if torch.is_tensor(loss) and loss.requires_grad:
        raise Mistake(
            "train_one_epoch returned a loss that is still attached to the autograd graph "
            f"(grad_fn={type(loss.grad_fn).__name__}): adding up loss tensors keeps a reference "
            "to every batch's graph; add loss.item(), a float"
        )
    labels = loader.dataset.tensors[1].split(loader.batch_size)
    if len(outputs) == len(labels):  # one forward pass per batch: the mean it should return
        losses = [
            (torch.nn.functional.cross_entropy(out, y).item(), len(y))
            for out, y in zip(outputs, labels, strict=True)
        ]
        mean_loss(float(loss), losses, loader.batch_size, "train_one_epoch returned", 1e-4)


def keeps_the_best_epoch(exercise) -> None:
    """fit keeps the weights of the epoch with the best validation accuracy"""
    model = frozen_resnet()
    scripted, snapshots, saves = iter([0.5, 0.8, 0.7]), [], []
    train_loader, val_loader = images(), images(8)
    validated_on, made = [], []

    def evaluate(model, loader, device):
        snapshots.append(model.fc.weight.detach().clone())
        validated_on.append(loader)
        return 1.0, next(scripted)

    real_save, real_make = torch.save, exercise.make_optimizer

    def watched_save(*args, **kwargs):
        saves.append(len(snapshots))  # after how many validations
        return real_save(*args, **kwargs)

    def make_optimizer(model, epochs, steps_per_epoch):
        made.append((epochs, steps_per_epoch))
        return real_make(model, epochs, steps_per_epoch)

    real_evaluate, exercise.evaluate = exercise.evaluate, evaluate
    exercise.make_optimizer, torch.save = make_optimizer, watched_save
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "best" / "best.pt"
            best = exercise.fit(model, train_loader, val_loader, 3, path, torch.device("cpu"))
            require(
                path.is_file(), f"fit wrote no checkpoint at the path it was given ({path.name})"
            )
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                raise Mistake(
                    "fit saved the whole model (torch.save(model, ...)): loading it needs the "
                    "model's code and runs pickled code; save {'model': model.state_dict(), "
                    "...} (fit)"
                ) from None
    finally:
        exercise.evaluate, exercise.make_optimizer = real_evaluate, real_make
        torch.save = real_save
    require(
        all(loader is val_loader for loader in validated_on),
        "fit validated on the training loader: an accuracy on the images it trains on says "
        "nothing about new ones and picks the wrong best epoch; evaluate(model, val_loader, "
        "device)",
    )
    require(
        len(made) <= 1,
        f"fit called make_optimizer {plural(len(made), 'time')}, once per epoch: each call starts "
        "a new optimizer and a new one-cycle schedule (the LR warms up again every epoch, AdamW "
        "forgets its moments); call it once, before the epoch loop",
    )
    if made:  # (a fit that builds its optimizer without make_optimizer is judged by the rest)
        epochs, steps = made[0]
        require(
            steps == len(train_loader),
            f"fit gave make_optimizer steps_per_epoch={steps}, but an epoch has "
            f"len(train_loader) = {len(train_loader)} batches"
            + (" (not one step per image)" if steps == len(train_loader.dataset) else "")
            + ": the schedule steps once per batch, and its last step must be the last batch's",
        )
        require(epochs == 3, f"fit gave make_optimizer epochs={epochs} for 3 epochs")
    require(
        len(snapshots) == 3,
        f"fit validated {plural(len(snapshots), 'time')} in 3 epochs: once per epoch",
    )
    weights = [v for k, v in _tensors(saved) if k.endswith("fc.weight")]
    require(weights, "the checkpoint holds no fc.weight: save model.state_dict()")
    require(
        torch.equal(weights[0], snapshots[1])
        or not (best == 0.8 and saves == [3] and torch.equal(weights[0], snapshots[2])),
        "fit found the best epoch (0.8) but saved after the last one, and the file holds the last "
        "epoch's weights: model.state_dict() returns references to the live tensors, which the "
        "later epochs changed; save at once, or keep copy.deepcopy(model.state_dict()) (fit)",
    )
    require(
        torch.equal(weights[0], snapshots[1]),
        "with validation accuracies 0.5, 0.8, 0.7 the checkpoint should hold epoch 2's weights "
        "(0.8), it holds another epoch's: save only when the accuracy beats the best so far",
    )
    require(
        best == 0.8,
        f"fit returned {best!r}; the best validation accuracy was 0.8: return the best, not the "
        "last epoch's",
    )


def _tensors(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}{key}.")
    elif isinstance(value, torch.Tensor):
        yield prefix.rstrip("."), value


@needs()  # every check above: the real run is long, and longest for a wrong attempt
def reaches_85_percent(exercise) -> None:
    """the real run reaches more than 85% validation accuracy on the offline challenge data"""
    for needed in (CHALLENGE_WEIGHTS, CHALLENGE_DATA):
        require(
            needed.exists(),
            f"{needed} is missing: run `make challenge-data` once (minutes: if one is running "
            "already, wait for it; a second beside it only slows both)",
        )
    threads = torch.get_num_threads()
    # A real training run: the threads the project's CPU thread rule gives this process (every
    # core on an idle machine, fewer beside other work: project/core/threads.py).
    torch.set_num_threads(cpu_threads.thread_count())
    try:
        with tempfile.TemporaryDirectory() as folder:
            best = exercise.run_challenge(
                CHALLENGE_DATA, CHALLENGE_WEIGHTS, Path(folder) / "best.pt"
            )
    finally:
        torch.set_num_threads(threads)
    require(
        best > TARGET,
        f"best validation accuracy {best:.4f}, the challenge asks for more than {TARGET}: check "
        "the normalization (MEAN, STD), the LR and the number of epochs",
    )


# Checks that need files the project makes on request: tests run them only where they exist.
REQUIRES_FILES = {"reaches_85_percent": (CHALLENGE_WEIGHTS, CHALLENGE_DATA)}

CHECKS = [
    head_is_the_only_trainable_layer,
    loads_the_weights_file,
    optimizer_and_schedule,
    training_epoch,
    keeps_the_best_epoch,
    reaches_85_percent,
]

# (old text of the solution, its broken replacement, words of the message that must catch it)
MUTANTS = [
    ("        parameter.requires_grad = False  # freeze", "        pass  #", "only fc's two"),
    ("    model.fc = nn.Linear(", "    model.fc2 = nn.Linear(", "model.fc has 1000 outputs"),
    (
        "    missing, unexpected = model.load_state_dict(state, strict=False)\n"
        '    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected, '
        "(missing, unexpected)\n",
        "",
        "conv1's weights are not the file's",
    ),  # fmt: skip
    (
        "    trainable = [p for p in model.parameters() if p.requires_grad]  # the head only\n",
        "    trainable = list(model.parameters())\n",
        "give it the trainable ones only",
    ),  # fmt: skip
    (
        "        scheduler.step()  # after",
        "        pass  #",
        "call scheduler.step() once per batch",
    ),
    (
        "        scaler.step(optimizer)\n        scaler.update()\n        scheduler.step()",
        "        scheduler.step()\n        scaler.step(optimizer)\n        scaler.update()",
        "scheduler.step() ran before optimizer.step()",
    ),  # fmt: skip
    (
        "        with torch.autocast(device.type, dtype=dtype):",
        "        if True:",
        "without autocast",
    ),
    ("    model.eval()  # a frozen backbone", "    model.train()  #", "BatchNorm updates"),
    ("        if accuracy > best:", "        if True:", "it holds another epoch's"),
    # Found by writing wrong attempts as learners do (issue 25):
    (  # the freezing loop after the new fc: nothing trains
        "        parameter.requires_grad = False  # freeze the backbone ...\n"
        "    model.fc = nn.Linear(model.fc.in_features, num_classes)  # ... a new layer",
        "        pass\n    model.fc = nn.Linear(model.fc.in_features, num_classes)\n"
        "    for parameter in model.parameters():\n        parameter.requires_grad = False  #",
        "the freezing loop ran after model.fc was replaced",
    ),  # fmt: skip
    (  # a strict load of a file that has no fc
        "model.load_state_dict(state, strict=False)",
        "model.load_state_dict(state)",
        "the weights file has no fc",
    ),
    (  # one schedule step per epoch counted, one per batch taken
        "total_steps=epochs * steps_per_epoch",
        "total_steps=epochs",
        "the LR schedule ran out of steps",
    ),
    (  # autocast copied from a GPU recipe
        "torch.autocast(device.type, dtype=dtype)",
        'torch.autocast("cuda", dtype=torch.float16)',
        "the autocast was for 'cuda' while the model runs on the CPU",
    ),
    (
        "total_loss += loss.item() * labels.shape[0]",
        "total_loss += loss * labels.shape[0]",
        "train_one_epoch returned a loss that is still attached to the autograd graph",
    ),
    (  # the best epoch's state_dict() kept by reference, saved at the end
        "            torch.save(\n"
        '                {"model": model.state_dict(), "epoch": epoch, "val_acc": accuracy}, '
        "checkpoint\n            )\n    return best",
        "            best_state = model.state_dict()\n"
        '    torch.save({"model": best_state}, checkpoint)\n    return best',
        "model.state_dict() returns references to the live tensors",
    ),  # fmt: skip
]
