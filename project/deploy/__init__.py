"""Deployment formats made from a checkpoint, each checked against it on the test split.

    python -m project export --ckpt_path CKPT --format onnx|pt2     (project/deploy/export.py)
    python -m project quantize --ckpt_path CKPT                     (project/deploy/quantize.py)

checkpoint_data.py: the checkpoint's own data pipeline; files.py: atomic writes; parity.py:
agreement with the checkpoint; pt2.py: torch.export programs and AOTInductor packages;
onnx_int8.py and pt2e_int8.py: static int8 with ONNX Runtime and with PT2E (torchao).
"""
