"""The LitAPI of ``python -m project serve``: image bytes in, the top classes out, in batches.

    python -m project serve --ckpt_path CKPT     # a checkpoint of either loop (weights_only)
    python -m project serve --onnx model.onnx    # an exported file (python -m project export)

``decode_request`` turns one request's image into the network's input with the same two steps the
``predict`` command takes for a file: ``decode_image_bytes`` (project/data/images.py, what
``load_image`` does after reading the file) and ``inference_transform`` (project/data/transforms.py)
with the checkpoint's own image size, mean and std. ``batch`` stacks them, ``predict`` runs the
network once on the batch (PyTorch, or ONNX Runtime), ``unbatch`` splits the probabilities and
``encode_response`` names the top classes.
"""

from __future__ import annotations

import base64
import json

import litserve as ls
import numpy as np
import torch

from project.data.images import decode_image_bytes
from project.data.transforms import inference_transform

TOP_K = 5


def onnx_settings(session) -> dict:
    """The inference settings an exported file carries in its metadata
    (project/deploy/export.py)."""
    meta = session.get_modelmeta().custom_metadata_map
    missing = [key for key in ("class_names", "image_size", "mean", "std") if key not in meta]
    if missing:
        raise ValueError(f"no {', '.join(missing)} in its metadata (export it with "
                         "python -m project export)")  # fmt: skip
    settings = {
        "class_names": json.loads(meta["class_names"]),
        "image_size": int(meta["image_size"]),
        "mean": json.loads(meta["mean"]),
        "std": json.loads(meta["std"]),
    }
    if "crop_ratio" in meta:  # photos: crop as predict does (absent: squash)
        settings["crop_ratio"] = float(meta["crop_ratio"])
    return settings


class OnnxNetwork:
    """An ONNX Runtime session called like the network: N x 3 x S x S float -> N x classes."""

    def __init__(self, path: str, threads: int | None = None):
        import onnxruntime  # imported here: only --onnx needs it

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self.settings = onnx_settings(self.session)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {"images": images.numpy()})[0]
        return torch.from_numpy(np.asarray(logits))


def load_model(ckpt_path: str | None, onnx_path: str | None):
    """(network, settings) from a checkpoint or an ONNX file."""
    if onnx_path:
        network = OnnxNetwork(onnx_path)
        return network, network.settings
    from project.deploy.export import (
        network_from_checkpoint,  # Lightning's import: only for checkpoints
    )

    return network_from_checkpoint(ckpt_path)


class ClassifierAPI(ls.LitAPI):
    """One worker's model. ``max_batch_size`` > 1: LitServe gathers requests into batches."""

    def __init__(self, ckpt_path=None, onnx_path=None, top_k=TOP_K, max_pixels=None, **kwargs):
        super().__init__(**kwargs)
        self.ckpt_path, self.onnx_path = ckpt_path, onnx_path
        self.top_k, self.max_pixels = top_k, max_pixels

    def setup(self, device) -> None:
        torch.set_grad_enabled(False)
        self.network, self.settings = load_model(self.ckpt_path, self.onnx_path)
        self.class_names = list(self.settings["class_names"])
        self.transform = inference_transform(self.settings)  # predict's, crop included

    def decode_request(self, request: dict) -> torch.Tensor:
        # guard.py has already decoded these bytes once: an image that fails here cannot arrive.
        data = base64.b64decode(request["image"])
        return self.transform(decode_image_bytes(data, "upload", self.max_pixels))

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:  # batching off: LitServe skips batch() and passes one image
            images = images[None]
        with torch.inference_mode():
            return self.network(images).float().softmax(dim=1)

    def unbatch(self, probabilities: torch.Tensor) -> list[torch.Tensor]:
        return list(probabilities)

    def encode_response(self, probabilities: torch.Tensor) -> dict:
        if probabilities.dim() == 2:  # batching off: predict made a batch of one
            probabilities = probabilities[0]
        top = probabilities.topk(min(self.top_k, probabilities.numel()))
        return {
            "top_k": [
                {"class": self.class_names[index], "probability": round(float(value), 6)}
                for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ]
        }
