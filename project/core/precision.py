"""``precision: auto``: choose the fastest precision this machine runs natively.

- CUDA: "bf16-mixed" on GPUs with bfloat16 support (Ampere and newer), else "16-mixed" (float16
  autocast with a GradScaler, so small gradients do not underflow).
- CPU: "bf16-mixed" only when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX);
  else "32-true", because without them bfloat16 arithmetic is emulated, not accelerated.
  ``python -m benchmarks.precision_step`` checks the choice on your machine: it times training
  steps of SmallCNN and ResNet18 in float32 and under bfloat16 autocast, prints both and their
  ratio, and says whether "auto" picked the faster one (one run: benchmarks/README.md, table 5).
- Anything other than "auto" is returned unchanged: an explicit choice always wins.

    python -c "from project.core.precision import resolve_precision as r; print(r('auto'))"

``channels_last: auto`` (the recipe's option, configs/resnet18.yaml) is decided here too, from the
resolved precision and the device, never from a timing taken at run time (the two loops must
decide alike, and a timing on a busy machine would not): NHWC exactly when the convolutions run in
reduced precision on hardware built for it, a CUDA GPU (tensor cores read NHWC) or a CPU with
native bfloat16 (oneDNN's bf16 kernels are NHWC); NCHW in float32, where channels_last alone was
measured slower or no faster for ResNet18. The evidence: ``python -m
benchmarks.accelerator_options`` times every combination of precision and layout and says whether
the rule picked the faster one.
"""

from __future__ import annotations

import torch

GPU_ACCELERATORS = ("auto", "gpu", "cuda")
REDUCED_PRECISIONS = ("bf16-mixed", "16-mixed", "bf16-true", "16-true", "bf16", "16")


def cpu_has_native_bf16() -> bool:
    # Private helpers in torch.cpu; absent on other builds, where we assume no native support.
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(
    precision: str | int | None, accelerator: object = "auto"
) -> str | int | None:
    """Return the precision Lightning (or the manual loop) should use."""
    if precision != "auto":
        return precision
    if accelerator in GPU_ACCELERATORS and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def resolve_channels_last(
    option: bool | str, device: torch.device | str, precision: str | int | None
) -> bool:
    """``channels_last`` for a run on ``device`` at the resolved ``precision`` ("auto": the rule
    in the module docstring; true or false: unchanged)."""
    if option != "auto":
        return bool(option)
    if str(precision) not in REDUCED_PRECISIONS:
        return False
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16())
