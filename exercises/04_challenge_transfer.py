"""Exercise 4, the challenge: transfer learning with a pretrained ResNet18 (Challenge phase, 30 m).

Once per machine, make the offline data and the "pretrained" backbone (about 3 minutes):

    make challenge-data          # data/glyphs: digits in 6 fonts + source_resnet18.pth

The task: digits 0-9 drawn in 6 fonts, only 20 labelled images per digit, 1,200 to validate on.
The backbone in data/glyphs/source_resnet18.pth learned the 52 Latin letters in 16 other fonts
(project/transfer/): it has never seen a digit, yet its features make 20 examples per digit enough.
Write the four functions below, then check your work:

    make exercise N=4            # or: python -m exercises.check 4
    python exercises/04_challenge_transfer.py      # the run itself: accuracy per epoch

The goal: more than 85% validation accuracy (the reference solution: 0.8875). A random frozen
backbone gets 0.30-0.38 with this recipe (0.378, 0.366, 0.303 for three random inits, seeds 0-2:
the reference solution's ``run_challenge(weights=f)`` with ``f`` a file of
``torch.manual_seed(s); resnet18().state_dict()``; 2-core AMD EPYC VM, shared, 2026-12-03), and
0.361 with the project's recipe (`make transfer` prints the whole comparison, docs/transfer.md).
The checker builds your model from a weights file of its own, watches a training epoch (which
parameters change, the LR, autocast, the gradients each step uses), scripts the validation
accuracies to see which epoch your checkpoint keeps, and finally runs ``run_challenge()``: only
once every other check passes (a backbone left unfrozen would train for half an hour).
When every check passes, compare with exercises/solutions/04_challenge_transfer.py and with
``TransferNetwork`` in project/models/transfer.py (any torchvision backbone, gradual unfreezing).

Hints
- ``from torchvision.models import resnet18``; ``resnet18(weights=None)`` builds it empty; online
  you would write ``resnet18(weights=ResNet18_Weights.DEFAULT)``. Offline, fill it from the file:
  ``torch.load(weights_file, map_location="cpu", weights_only=True)``, then
  ``model.load_state_dict(state, strict=False)`` (the file has no ``fc``: that layer is replaced).
- Freeze: ``p.requires_grad = False`` for every parameter, then ``model.fc = nn.Linear(
  model.fc.in_features, num_classes)``: a new layer's parameters require gradients.
- Give the optimizer the trainable parameters only; ``torch.optim.lr_scheduler.OneCycleLR(
  optimizer, max_lr=0.01, total_steps=epochs * steps_per_epoch)`` warms up, then anneals.
  Step it after ``optimizer.step()``, every batch.
- Mixed precision: ``with torch.autocast(device.type, dtype=torch.bfloat16):`` around the forward
  pass and the loss (on a GPU, float16 with ``torch.amp.GradScaler``); ``backward()`` outside it.
- A frozen backbone still changes in ``model.train()`` mode: BatchNorm updates its running
  statistics from every batch. ``model.eval()`` then ``model.fc.train()`` trains the head alone.
- Best checkpoint: after each validation, save ``{"model": model.state_dict(), ...}`` only when
  the accuracy beats the best so far.

Common mistakes (the checker catches each)
- the backbone not frozen, or the old 1000-class ``fc`` kept;
- the weights file never loaded (the network starts random);
- the optimizer over all parameters, or no schedule (the LR never moves), or the scheduler stepped
  before the optimizer, or once per epoch; a schedule sized in epochs (``CosineAnnealingLR(
  T_max=epochs)``) stepped every batch; ``steps_per_epoch`` counted in images;
- ``zero_grad()`` forgotten (gradients accumulate) or between ``backward()`` and ``step()``;
- no autocast, so no mixed precision;
- BatchNorm statistics of the frozen backbone drifting in train mode;
- saving the last epoch instead of the best one, or keeping the best ``model.state_dict()`` to
  save later (it holds references to the live tensors: later epochs change it); returning the
  last accuracy; the whole model saved; validating on the training loader; ``make_optimizer``
  called every epoch (the schedule restarts);
- freezing after replacing ``fc`` (then nothing trains), or a strict load of a file without ``fc``;
- OneCycleLR over ``epochs`` steps while stepping every batch (it runs out of steps);
- ``torch.autocast("cuda", ...)`` copied from a GPU recipe on a CPU (switched off with a warning);
- a returned loss that is a tensor still attached to the autograd graph (``loss.item()``), or a
  mean of batch means (the last batch is smaller).

Ask yourself (the checker cannot see these)
- Is the new layer ``nn.Linear(model.fc.in_features, ...)``? ``512`` works for ResNet18 only.
- Is ``backward()`` outside the ``autocast`` block, as the recipe has it?
- On a GPU with float16: ``scaler.scale(loss).backward()``, ``scaler.step(optimizer)``,
  ``scaler.update()``? The checker runs on a CPU with bfloat16, where the scaler is off.
- Did you keep MEAN and STD, the statistics the backbone was trained with? Only the real run (the
  last check) shows what other values cost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import resnet18  # noqa: F401  (you will need it)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from project.data.datasets import ImageDataset  # noqa: E402  (the Dataset of exercise 1)
from project.data.transforms import eval_transform  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "glyphs" / "digits" / "k20_seed0"  # written by make challenge-data
WEIGHTS = ROOT / "data" / "glyphs" / "source_resnet18.pth"  # the "pretrained" backbone
MEAN, STD = [0.084] * 3, [0.194] * 3  # what the backbone was trained with: keep them


def build_model(num_classes: int, weights_file: str | Path) -> nn.Module:
    """A ResNet18 with the weights in ``weights_file``, a new final layer, the rest frozen."""
    raise NotImplementedError(
        "TODO: build_model: resnet18(weights=None), load_state_dict from the file, freeze every "
        "parameter, then a new nn.Linear as model.fc"
    )


def make_optimizer(model: nn.Module, epochs: int, steps_per_epoch: int):
    """Return ``(optimizer, scheduler)``: the trainable parameters, an LR schedule per batch."""
    raise NotImplementedError(
        "TODO: make_optimizer: AdamW over the parameters that require grad, OneCycleLR over "
        "epochs * steps_per_epoch steps"
    )


def train_one_epoch(model, loader, optimizer, scheduler, device: torch.device) -> float:
    """One epoch of the head under mixed precision; the LR schedule moves every batch. Returns the
    mean loss per image."""
    raise NotImplementedError(
        "TODO: train_one_epoch: exercise 2's loop with torch.autocast around forward + loss, "
        "scheduler.step() after optimizer.step(), the frozen backbone in eval mode"
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device) -> tuple[float, float]:
    """(mean loss per image, accuracy) over ``loader``: exercise 2's evaluate, given."""
    model.eval()
    total_loss, correct, total_images = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        total_images += labels.shape[0]
    return total_loss / total_images, correct / total_images


def fit(model, train_loader, val_loader, epochs: int, checkpoint: str | Path, device) -> float:
    """Train ``epochs`` epochs; keep the weights of the best validation accuracy in
    ``checkpoint``; return that accuracy."""
    raise NotImplementedError(
        "TODO: fit: make_optimizer, then per epoch train_one_epoch and evaluate; torch.save the "
        "state_dict when the accuracy beats the best so far"
    )


def loaders(root: Path, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    """The challenge's images (root/train, root/val) through the project's Dataset, given."""
    transform = eval_transform(32, MEAN, STD)
    train = ImageDataset.from_folder(root / "train", transform).decode_all()
    val = ImageDataset.from_folder(root / "val", transform).decode_all()
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True),
        DataLoader(val, batch_size=256),
    )


def run_challenge(data=DATA, weights=WEIGHTS, checkpoint=None, epochs: int = 15) -> float:
    """The whole challenge with your functions, given; returns the best validation accuracy."""
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_loader, val_loader = loaders(Path(data))
    model = build_model(len(train_loader.dataset.class_names), weights).to(device)
    checkpoint = checkpoint or ROOT / "lightning_logs" / "challenge" / "best.pt"
    best = fit(model, train_loader, val_loader, epochs, checkpoint, device)
    print(f"best validation accuracy {best:.4f}, weights in {checkpoint}")
    return best


if __name__ == "__main__":
    run_challenge()
