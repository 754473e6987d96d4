"""Exercise 2: the complete training loop (Exercise phase, about 15 minutes).

Write ``train_one_epoch`` and ``evaluate`` below, then check your work:

    make exercise N=2            # or: python -m exercises.check 2

The checker runs your functions on a small network and watches what they do: the order of
zero_grad / backward / step, the mode of the model, whether autograd records during validation,
whether the batches reach the model's device. Each failing line names the mistake and where to look.
When every check passes, compare with exercises/solutions/02_training_loop.py and with
``train_one_epoch()`` / ``evaluate()`` in project/manual/loop.py (the project's own loop).

Hints
- Every iteration: move the batch to the device, ``optimizer.zero_grad()``,
  ``logits = model(images)``, ``loss = F.cross_entropy(logits, labels)``, ``loss.backward()``,
  ``optimizer.step()``.
- Inputs and targets both go to the model's device: ``images.to(device)``, ``labels.to(device)``.
- ``model.train()`` at the start of training, ``model.eval()`` at the start of validation: they
  switch dropout and BatchNorm (lessons/03_modules.py shows the difference).
- Validation needs no gradients: ``with torch.no_grad():`` (or the ``@torch.no_grad()`` decorator).
- ``logits`` has shape (batch, classes): dimension 0 is the batch. A prediction per image is
  ``logits.argmax(dim=1)``.
- ``loss.item()`` turns a one-element tensor into a Python float (and keeps no graph alive).

Common mistakes (the checker catches each)
- no ``zero_grad()``: gradients accumulate across steps, each update uses every earlier batch too;
- the batch left on the CPU while the model is on the GPU ("Expected all tensors to be on the same
  device");
- validating in train mode: dropout stays on, BatchNorm learns statistics from validation data;
- validating without ``no_grad()``: a graph is built for nothing (memory, time);
- ``optimizer.step()`` before ``loss.backward()``: the update uses stale or no gradients;
- the wrong batch dimension: ``argmax(dim=0)`` picks per class instead of per image, or the
  accuracy divides by the number of batches instead of the number of images;
- adding up loss tensors (``total += loss``): a returned loss still attached to the autograd
  graph, which keeps every batch's graph referenced; ``running.backward()`` on such a sum goes
  through earlier batches' graphs a second time;
- softmax fed to ``F.cross_entropy`` (it applies log_softmax itself), raw logits fed to
  ``F.nll_loss``, or ``reduction="sum"`` in training (the step size grows with the batch);
- an in-place change (``x.clamp_()``, ``x += ...``) to a tensor that backward() still needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401  (you will need F.cross_entropy)
from torch import nn


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> float:
    """Train ``model`` on every batch of ``loader`` once; return the mean loss per image.

    ``loader`` yields ``(images, labels)`` batches (a DataLoader). Return the sum over batches of
    ``loss.item() * batch size``, divided by the number of images.
    """
    raise NotImplementedError(
        "TODO: train_one_epoch: model.train(), then per batch: to(device), zero_grad, forward, "
        "loss, backward, step"
    )


def evaluate(model: nn.Module, loader, device: torch.device) -> tuple[float, float]:
    """Return ``(mean loss per image, accuracy)`` of ``model`` over every batch of ``loader``.

    No weights change here. Accuracy is the share of images whose highest logit is their label.
    """
    raise NotImplementedError(
        "TODO: evaluate: model.eval(), torch.no_grad(), per batch: to(device), forward, sum the "
        "loss and the correct predictions"
    )
