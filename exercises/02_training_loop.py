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
- no ``zero_grad()``, or once before the loop: gradients accumulate across steps, each update uses
  every earlier batch too; ``zero_grad()`` between ``backward()`` and ``step()`` (no gradients);
  no ``backward()``; no ``step()``, or one step after the loop;
- the batch left on the CPU while the model is on the GPU ("Expected all tensors to be on the same
  device"), also ``images.to(device)`` with its result thrown away (``.to()`` returns a copy);
- validating in train mode: dropout stays on, BatchNorm learns statistics from validation data
  (also ``model.eval`` without its parentheses);
- validating without ``no_grad()``: a graph is built for nothing (memory, time); a bare
  ``torch.no_grad()`` line does nothing; the training forward under ``no_grad()`` (no gradients);
- ``optimizer.step()`` before ``loss.backward()``: the update uses stale or no gradients;
- the wrong batch dimension: ``argmax(dim=0)`` picks per class instead of per image, ``argmax()``
  one index for the whole batch, or the accuracy divides by the number of batches;
- averages over batches of unequal size (the last batch is smaller): a mean of batch means or of
  batch accuracies, a sum divided by the number of batches, or ``batch_size`` images counted for
  every batch; ``(accuracy, loss)`` returned in the wrong order;
- adding up loss tensors (``total += loss``): a returned loss still attached to the autograd
  graph, which keeps every batch's graph referenced; ``running.backward()`` on such a sum goes
  through earlier batches' graphs a second time;
- softmax fed to ``F.cross_entropy`` (it applies log_softmax itself), raw logits fed to
  ``F.nll_loss``, ``reduction="sum"`` in training (the step size grows with the batch), or
  ``F.cross_entropy(labels, logits)``;
- an in-place change (``x.clamp_()``, ``x += ...``) to a tensor that backward() still needs.

Ask yourself (the checker cannot see these)
- In your own script, does ``evaluate`` get the validation loader, never the training one?
- With gradient clipping: is it after ``backward()`` and before ``step()`` (with a GradScaler,
  after ``scaler.unscale_(optimizer)``)?
- When the optimizer holds only some parameters, ``optimizer.zero_grad()`` clears only those:
  do the others need their gradients at all (``requires_grad_(False)``)?
- Is the model on ``device`` before the optimizer is built and before the first batch?
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
