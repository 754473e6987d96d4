"""Static int8 with ONNX Runtime: QDQ format, per-channel weights, activations calibrated on
images of the checkpoint's training split (``python -m project quantize --backend onnxruntime``).

The fp32 ONNX file (project/deploy/export.py ``export_onnx``) is first prepared with ONNX Runtime's
``quant_pre_process`` (shape inference and graph optimization, which folds BatchNorm into the
convolutions so they quantize as one), then ``quantize_static`` inserts QuantizeLinear /
DequantizeLinear pairs; ONNX Runtime's CPU provider runs the pairs around convolutions and matrix
products as int8 kernels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from project.deploy.files import atomic_path


class ImagesReader:
    """onnxruntime.quantization.CalibrationDataReader over a tensor of images."""

    def __init__(self, images: torch.Tensor, batch_size: int = 32):
        self.batches = iter(
            [images[i : i + batch_size].numpy() for i in range(0, len(images), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"images": batch}


def quantize_onnx(fp32_path: Path, calibration: torch.Tensor, settings: dict, output: Path) -> Path:
    """Write the int8 QDQ model of ``fp32_path`` to ``output`` with ``settings`` as metadata."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32_path.with_name(fp32_path.stem + ".prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    with atomic_path(output) as temporary:
        quantize_static(
            str(prepared),
            str(temporary),
            ImagesReader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: the VNNI kernels
            weight_type=QuantType.QInt8,
        )
        model = onnx.load(str(temporary))
        del model.metadata_props[:]
        for key, value in settings.items():
            entry = model.metadata_props.add()
            entry.key = key
            entry.value = json.dumps(value) if isinstance(value, list) else str(value)
        onnx.save(model, str(temporary))
    prepared.unlink(missing_ok=True)
    return output
