"""DDP across an unfreeze: synchronize the gradients of parameters unfrozen after DDP wrapped.

DistributedDataParallel decides, once, when it wraps the model, which parameters it averages
across processes: those with ``requires_grad`` at that moment. A backbone frozen then and unfrozen
later (ResNetClassifier's stages) still gets gradients, but each process keeps its own, so the
processes' backbones drift apart, silently. This callback remembers what DDP registered and, after
every backward, averages the gradients of every other trainable parameter over all processes
(one all-reduce of one flat buffer). Without DDP it does nothing.

ResNetClassifier adds it itself (``configure_callbacks``); tests/test_transfer.py runs two gloo
processes across the unfreeze and compares their weights. The manual loop needs none of this: it
wraps the network in DDP again at every epoch's start (project/manual/).
"""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.parallel import DistributedDataParallel


class SyncLateUnfrozenGradients(Callback):
    def __init__(self):
        self.registered: set[int] | None = None  # ids of the parameters DDP averages itself

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning wraps the model before this hook and before the first epoch's stage change,
        # so requires_grad now is what DDP saw when it wrapped.
        wrapped = trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel):
            self.registered = {id(p) for p in pl_module.parameters() if p.requires_grad}

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.registered is None or not dist.is_initialized():
            return
        late = [
            p
            for p in pl_module.parameters()
            if p.requires_grad and id(p) not in self.registered and p.grad is not None
        ]
        if not late:
            return
        # The same parameters on every process (stages follow the epoch number): one collective.
        grads = [p.grad for p in late]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            grad.copy_(synced)
