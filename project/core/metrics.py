"""Per-class quality of a classifier, computed the same way by both training loops.

Accuracy alone hides a class the model never gets right: on a 20:1 folder, predicting the majority
class always scores 95%. ``EvaluationMetrics`` counts one confusion matrix per stage (summed over
processes when several train) and reads everything else off it:

    per class      precision, recall, F1, support (true images of the class)
    macro          their plain mean over classes (every class counts the same)
    weighted       their mean weighted by support
    top-5          accuracy of "the true class is among the 5 most probable" (more than 5 classes)
    confusion      counts[true, predicted]

    metrics = EvaluationMetrics(num_classes).to(device)
    for logits, labels in batches:
        metrics.update(logits, labels)      # on the device, no host reads
    result = metrics.compute()              # once per validation / test (DDP: over all processes)
    metrics.scalars(result, "val")          # {"val/f1_macro": ..., ...}: logged, monitorable

The LightningModules (project/lit/classifier.py) log ``val/precision_macro``, ``val/recall_macro``,
``val/f1_macro`` (and ``val/acc_top5``) at each validation end, ``test/...`` at test; the manual
loop (project/manual/loop.py ``evaluate()``) calls this same class. Any of these names can be the
``monitor`` of ModelCheckpoint or EarlyStopping. Plain torch, no Lightning import.

Why one matrix, and no torchmetrics: precision, recall and F1 are its column and row ratios, so
counting them with three more torchmetrics objects (as before) repeated the same per-batch counting
three times and synced three more states; the values are the same (tests/test_metrics.py checks
them against scikit-learn), including torchmetrics' 0 for a class never predicted or never
present. With one matrix and one top-5 count left, the counting is a few lines of torch here, and
``import torchmetrics`` (1.6 s on the development VM, -X importtime: it loads scipy through its
audio metrics) is no longer on the manual loop's start-up (benchmarks/manual_import.py). The
sum over processes is what torchmetrics' sync did: an all_reduce of the counts at compute().
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

TOP_K = 5
MACRO_NAMES = ("precision_macro", "recall_macro", "f1_macro")


class EvaluationMetrics(nn.Module):
    """Per-class precision / recall / F1, their macro and weighted means, top-5 and confusion."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.top_k = TOP_K if num_classes > TOP_K else None
        # Plain tensors, not buffers: outside state_dict, and outside what callbacks that swap a
        # model's buffers touch (EMAWeightAveraging swaps the averaged copy's in for validation).
        # They follow the batches' device in update().
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)  # [true, pred]
        self.top_k_correct = torch.zeros((), dtype=torch.long)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Count a batch on the device: no host read."""
        logits = logits.detach().float()
        if self.confusion.device != logits.device:  # first batch on this device
            self.confusion = self.confusion.to(logits.device)
            self.top_k_correct = self.top_k_correct.to(logits.device)
        predicted = logits.argmax(dim=1)
        cells = labels.long() * self.num_classes + predicted
        self.confusion += torch.bincount(cells, minlength=self.num_classes**2).view_as(
            self.confusion
        )
        if self.top_k is not None:
            top = logits.topk(self.top_k, dim=1).indices
            self.top_k_correct += (top == labels[:, None]).any(dim=1).sum()

    def _summed(self, counts: torch.Tensor) -> torch.Tensor:
        """``counts`` summed over every process, as a copy: reset() must not clear a result."""
        counts = counts.clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts)
        return counts

    def compute(self) -> dict[str, torch.Tensor]:
        """Per-class tensors ("precision", "recall", "f1", "support"), macro and weighted means
        ("f1_macro", "f1_weighted", ...), "acc_top5" and "confusion" (rows: true class)."""
        confusion = self._summed(self.confusion)
        support = confusion.sum(dim=1)  # true images per class (rows)
        shares = support.float() / support.sum().clamp(min=1)
        correct = confusion.diagonal().float()
        predicted = confusion.sum(dim=0).float()  # images predicted as each class (columns)
        precision = correct / predicted.clamp(min=1)  # 0 where never predicted (torchmetrics)
        recall = correct / support.float().clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=torch.finfo().tiny)
        result = {"confusion": confusion, "support": support}
        for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
            result[name] = per_class
            result[f"{name}_macro"] = per_class.mean()
            result[f"{name}_weighted"] = (per_class * shares).sum()
        if self.top_k is not None:
            seen = support.sum().clamp(min=1)
            result[f"acc_top{TOP_K}"] = self._summed(self.top_k_correct).float() / seen
        return result

    def reset(self) -> None:
        self.confusion.zero_()
        self.top_k_correct.zero_()

    @staticmethod
    def accuracy(result: dict[str, torch.Tensor]) -> float:
        """Share of images on the confusion matrix's diagonal (val/acc, test/acc in both loops)."""
        confusion = result["confusion"]
        return confusion.trace().item() / max(confusion.sum().item(), 1)

    @staticmethod
    def scalars(result: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        """The numbers logged at every validation / test: macro means and top-5 accuracy."""
        names = [*MACRO_NAMES, f"acc_top{TOP_K}"]
        return {f"{stage}/{name}": result[name] for name in names if name in result}
