"""The LitAPI of ``python -m project serve``: image bytes in, the top classes out, in batches.

    python -m project serve --ckpt_path CKPT     # a checkpoint of either loop (weights_only)
    python -m project serve --onnx model.onnx    # an exported file (python -m project export)

The image is turned into the network's input in the API server process (guard.py), with the same
two steps the ``predict`` command takes for a file: ``decode_image_bytes`` (project/data/images.py,
what ``load_image`` does after reading the file) and ``inference_transform``
(project/data/transforms.py) with the checkpoint's own image size, mean and std. The model worker
then does model work only: ``decode_request`` reads that tensor back, ``batch`` stacks them,
``predict`` runs the network once on the batch (PyTorch, or ONNX Runtime) on the worker's device,
``unbatch`` splits the probabilities and ``encode_response`` names the top classes.

The device is LitServe's (``--accelerator``): on a CUDA GPU the network runs in half precision
when the checkpoint was trained in it (``checkpoint_half_dtype``), in float32 otherwise; on the
CPU always in float32 with ``threads`` intra-op threads (one per core the API server leaves).
"""

from __future__ import annotations

import base64
import json
import signal

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

    def __init__(self, path: str, threads: int | None = None, device: str = "cpu"):
        import onnxruntime  # imported here: only --onnx needs it

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        self.session = onnxruntime.InferenceSession(path, options, providers=providers)
        self.settings = onnx_settings(self.session)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {"images": images.cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(logits))


def load_model(ckpt_path: str | None, onnx_path: str | None, threads=None, device="cpu"):
    """(network, settings) from a checkpoint or an ONNX file."""
    if onnx_path:
        network = OnnxNetwork(onnx_path, threads, device)
        return network, network.settings
    from project.deploy.export import (
        network_from_checkpoint,  # Lightning's import: only for checkpoints
    )

    return network_from_checkpoint(ckpt_path)


def checkpoint_half_dtype(ckpt_path: str) -> torch.dtype | None:
    """The half type a checkpoint was trained in, or None (float32). Lightning keeps no precision
    setting in a checkpoint; what it does keep says it: weights stored in float16 or bfloat16
    ("16-true", "bf16-true"), or a GradScaler state (key "MixedPrecision": "16-mixed")."""
    from project.runs.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(ckpt_path)
    floats = {v.dtype for v in (checkpoint.get("state_dict") or {}).values()
              if torch.is_tensor(v) and v.is_floating_point()}  # fmt: skip
    for dtype in (torch.bfloat16, torch.float16):
        if dtype in floats:
            return dtype
    return torch.float16 if "MixedPrecision" in checkpoint else None


def serving_dtype(precision: str, ckpt_path: str | None, device: str) -> torch.dtype:
    """``--precision``: "auto" is the checkpoint's half type on CUDA, else float32; "16" and
    "bf16" ask for one on any device; ONNX files run as exported (float32)."""
    if precision == "32" or ckpt_path is None:
        return torch.float32
    if precision == "16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if not str(device).startswith("cuda"):
        return torch.float32
    return checkpoint_half_dtype(ckpt_path) or torch.float32


def tensor_from_message(request: dict) -> torch.Tensor:
    """guard.py's ``tensor_message`` read back: a float32 tensor of its shape."""
    data = bytearray(base64.b64decode(request["tensor"]))  # frombuffer needs a writable buffer
    return torch.frombuffer(data, dtype=torch.float32).reshape(request["shape"])


class ClassifierAPI(ls.LitAPI):
    """One worker's model. ``max_batch_size`` > 1: LitServe gathers requests into batches."""

    def __init__(self, ckpt_path=None, onnx_path=None, top_k=TOP_K, max_pixels=None,
                 threads=None, precision="auto", **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.ckpt_path, self.onnx_path = ckpt_path, onnx_path
        self.top_k, self.max_pixels = top_k, max_pixels
        self.threads, self.precision = threads, precision

    def setup(self, device) -> None:
        # The server process stops this worker (cli.py); Ctrl-C reaching the whole process group
        # must not print a KeyboardInterrupt traceback from here.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_grad_enabled(False)
        if self.threads:
            torch.set_num_threads(self.threads)
        self.device = torch.device(device)
        self.network, self.settings = load_model(self.ckpt_path, self.onnx_path, self.threads,
                                                 str(device))  # fmt: skip
        self.dtype = serving_dtype(self.precision, self.ckpt_path, str(device))
        if isinstance(self.network, torch.nn.Module):
            self.network = self.network.to(self.device, self.dtype)
        self.class_names = list(self.settings["class_names"])
        self.transform = inference_transform(self.settings)  # predict's, crop included

    def decode_request(self, request: dict) -> torch.Tensor:
        if "tensor" in request:  # from guard.py: decoded and preprocessed there
            return tensor_from_message(request)
        # {"image": base64} when the API is used without guard.py (tests, a program of yours)
        data = base64.b64decode(request["image"])
        return self.transform(decode_image_bytes(data, "upload", self.max_pixels))

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:  # batching off: LitServe skips batch() and passes one image
            images = images[None]
        if isinstance(self.network, torch.nn.Module):
            images = images.to(self.device, self.dtype, non_blocking=True)
        with torch.inference_mode():
            return self.network(images).float().softmax(dim=1).cpu()

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
