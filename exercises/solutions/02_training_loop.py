"""Exercise 2, reference solution: one training epoch and one evaluation pass in plain PyTorch.

Check it with ``python -m exercises.check 2 --solution``. The same steps, with mixed precision, an
LR schedule and checkpoints around them, are ``train_one_epoch()`` and ``evaluate()`` in
project/manual/loop.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> float:
    """Train ``model`` on every batch of ``loader`` once; return the mean loss per image."""
    model.train()  # dropout on, BatchNorm uses (and updates) batch statistics
    total_loss, total_images = 0.0, 0
    for images, labels in loader:
        images = images.to(device)  # the batch goes where the model's weights are
        labels = labels.to(device)
        optimizer.zero_grad()  # gradients add up otherwise: clear the last batch's
        logits = model(images)  # (batch, classes)
        loss = F.cross_entropy(logits, labels)
        loss.backward()  # fills .grad of every parameter
        optimizer.step()  # uses .grad: only after backward()
        total_loss += loss.item() * labels.shape[0]
        total_images += labels.shape[0]
    return total_loss / total_images


@torch.no_grad()  # no graph: evaluation needs no gradients, and saves their memory
def evaluate(model: nn.Module, loader, device: torch.device) -> tuple[float, float]:
    """Return (mean loss per image, accuracy) of ``model`` over every batch of ``loader``."""
    model.eval()  # dropout off, BatchNorm uses its running statistics and leaves them alone
    total_loss, correct, total_images = 0.0, 0, 0
    for images, labels in loader:
        images = images.to(device)
        labels = labels.to(device)
        logits = model(images)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        predictions = logits.argmax(dim=1)  # dim 0 is the batch, dim 1 the classes
        correct += (predictions == labels).sum().item()
        total_images += labels.shape[0]
    return total_loss / total_images, correct / total_images
