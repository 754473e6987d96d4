"""How far a deployed model is from the checkpoint it came from, on the same images: accuracy of
each, top-1 agreement, and the largest |logit difference|.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Predict = Callable[[np.ndarray], np.ndarray]  # images N x 3 x S x S float32 -> logits N x C


def logits_of(predict: Predict, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """``predict`` over ``images`` in batches (the last batch smaller: dynamic batch size)."""
    parts = [
        predict(images[start : start + batch_size].numpy())
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts)


def torch_predict(module: Callable) -> Predict:
    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).float().numpy()

    return predict


def onnx_predict(path, provider: str = "CPUExecutionProvider", threads: int = 0) -> Predict:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (all cores)
    session = onnxruntime.InferenceSession(str(path), options, providers=[provider])
    return lambda batch: session.run(None, {"images": batch})[0]


def compare(reference: np.ndarray, candidate: np.ndarray, labels: torch.Tensor | None) -> dict:
    """Accuracies of both (None without labels), top-1 agreement and max |logit difference|."""
    first, second = reference.argmax(1), candidate.argmax(1)
    truth = None if labels is None else labels.numpy()
    return {
        "reference_acc": None if truth is None else float((first == truth).mean()),
        "acc": None if truth is None else float((second == truth).mean()),
        "agreement": float((first == second).mean()),
        "max_abs_diff": float(np.abs(reference - candidate).max()),
        "images": len(first),
    }
