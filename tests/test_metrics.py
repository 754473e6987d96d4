"""project/core/metrics.py: per-class precision / recall / F1, macro and weighted means, top-5 and
the
confusion matrix, checked against numbers worked out by hand (and against batches split
differently: the result must not depend on how the images were batched)."""

from __future__ import annotations

import pytest
import torch

from project.core.metrics import EvaluationMetrics


def logits_for(predicted: list[int], classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float()


def test_per_class_macro_and_weighted_match_hand_computed_values():
    # true:      0 0 0 0 1 1 2      predicted: 0 0 0 1 1 0 2
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    metrics = EvaluationMetrics(3)
    metrics.update(logits_for([0, 0, 0, 1, 1, 0, 2], 3), labels)
    result = metrics.compute()
    # class 0: precision 3/4, recall 3/4; class 1: 1/2, 1/2; class 2: 1, 1
    assert result["precision"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert result["recall"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert result["f1"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert result["support"].tolist() == [4, 2, 1]
    assert float(result["recall_macro"]) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert float(result["f1_weighted"]) == pytest.approx((0.75 * 4 + 0.5 * 2 + 1.0) / 7)
    assert result["confusion"].tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert "acc_top5" not in result  # 3 classes: top-5 says nothing


def test_batching_does_not_change_the_result_and_reset_forgets():
    torch.manual_seed(0)
    logits, labels = torch.randn(50, 8), torch.randint(0, 8, (50,))
    whole, parts = EvaluationMetrics(8), EvaluationMetrics(8)
    whole.update(logits, labels)
    for start in range(0, 50, 7):
        parts.update(logits[start : start + 7], labels[start : start + 7])
    a, b = whole.compute(), parts.compute()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1).float().mean()
    assert float(a["acc_top5"]) == pytest.approx(float(top5))
    whole.reset()
    whole.update(logits[:5], labels[:5])
    assert int(whole.compute()["support"].sum()) == 5


def test_scalars_are_the_logged_names():
    metrics = EvaluationMetrics(6)
    metrics.update(torch.randn(12, 6), torch.arange(12) % 6)
    names = set(EvaluationMetrics.scalars(metrics.compute(), "val"))
    assert names == {"val/precision_macro", "val/recall_macro", "val/f1_macro", "val/acc_top5"}


def test_a_result_survives_the_reset_that_follows_it():
    """Both loops log the accuracy after reset(): the result must be a copy of the counts."""
    metrics = EvaluationMetrics(3)
    metrics.update(torch.eye(3), torch.arange(3))
    result = metrics.compute()
    metrics.reset()
    assert EvaluationMetrics.accuracy(result) == 1.0
    assert int(metrics.confusion.sum()) == 0


def test_every_figure_matches_scikit_learn_on_random_predictions():
    from sklearn.metrics import (
        confusion_matrix,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    torch.manual_seed(1)
    logits, labels = torch.randn(300, 7), torch.randint(0, 7, (300,))
    labels[labels == 3] = 2  # class 3 never present: precision, recall, F1 0 as in torchmetrics
    metrics = EvaluationMetrics(7)
    metrics.update(logits, labels)
    result = metrics.compute()
    predicted = logits.argmax(1)
    for average in ("macro", "weighted"):
        expected = precision_recall_fscore_support(
            labels, predicted, labels=range(7), average=average, zero_division=0
        )
        for name, value in zip(("precision", "recall", "f1"), expected[:3], strict=True):
            assert float(result[f"{name}_{average}"]) == pytest.approx(value), (name, average)
    per_class = precision_recall_fscore_support(labels, predicted, labels=range(7), zero_division=0)
    for name, values in zip(("precision", "recall", "f1", "support"), per_class, strict=True):
        assert result[name].tolist() == pytest.approx(list(values)), name
    expected_confusion = confusion_matrix(labels, predicted, labels=range(7))
    assert result["confusion"].tolist() == expected_confusion.tolist()
    top5 = top_k_accuracy_score(labels, logits.softmax(1), k=5, labels=range(7))
    assert float(result["acc_top5"]) == pytest.approx(top5)
    assert EvaluationMetrics.accuracy(result) == pytest.approx(
        float((predicted == labels).float().mean())
    )


def test_counts_are_integers_that_stay_exact():
    metrics = EvaluationMetrics(6)
    metrics.update(torch.randn(4, 6), torch.tensor([0, 1, 2, 3]))
    assert metrics.confusion.dtype == torch.long and metrics.top_k_correct.dtype == torch.long
    assert metrics.compute()["confusion"].dtype == torch.long  # float32 counts stop at 2**24


def test_top5_only_with_more_than_five_classes():
    metrics = EvaluationMetrics(5)  # the true class is always among the top 5 of 5
    metrics.update(torch.randn(3, 5), torch.tensor([0, 1, 4]))
    assert "acc_top5" not in metrics.compute()


def test_one_image_gives_whole_shares():
    metrics = EvaluationMetrics(6)
    logits = torch.tensor([[0.0, 5.0, 4.0, 3.0, 2.0, 1.0]])  # predicts 1; 2 is in its top 5
    metrics.update(logits, torch.tensor([2]))
    result = metrics.compute()
    assert float(result["acc_top5"]) == 1.0 and EvaluationMetrics.accuracy(result) == 0.0
    metrics.reset()
    metrics.update(logits, torch.tensor([1]))
    result = metrics.compute()
    assert EvaluationMetrics.accuracy(result) == 1.0
    assert float(result["recall_weighted"]) == 1.0  # the one class present has all the weight


def _count_in_two_processes(rank: int, init_file: str, results: str) -> None:
    """One of two gloo processes: each counts its own half of the images, then computes."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    metrics = EvaluationMetrics(6)
    labels = torch.tensor([0, 1, 2, 3, 4, 5]) if rank == 0 else torch.tensor([5, 5])
    metrics.update(torch.nn.functional.one_hot(labels, 6).float(), labels)
    result = metrics.compute()
    torch.save({k: v for k, v in result.items()}, f"{results}.{rank}")
    dist.destroy_process_group()


def test_several_processes_compute_over_all_their_images(tmp_path):
    import torch.multiprocessing as mp

    results = str(tmp_path / "result")
    mp.spawn(_count_in_two_processes, args=(str(tmp_path / "init"), results), nprocs=2)
    for rank in (0, 1):
        result = torch.load(f"{results}.{rank}")
        assert result["support"].tolist() == [1, 1, 1, 1, 1, 3], rank  # 6 + 2 images
        assert float(result["acc_top5"]) == 1.0
