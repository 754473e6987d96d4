"""``precision: auto``: choose the fastest precision this machine runs natively.

- CUDA: "bf16-mixed" on GPUs with bfloat16 support (Ampere and newer), else "16-mixed" (float16
  autocast with a GradScaler, so small gradients do not underflow).
- CPU: "bf16-mixed" only when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX);
  else "32-true", because without them bfloat16 arithmetic is emulated, not accelerated.
  ``python -m benchmarks.precision_step`` checks the choice on your machine: it times training
  steps of SmallCNN and ResNet18 in float32 and under bfloat16 autocast, prints both and their
  ratio, and says whether "auto" picked the faster one (one run: benchmarks/README.md, table 5).
- Anything other than "auto" is returned unchanged: an explicit choice always wins.

    python -c "from project.precision import resolve_precision; print(resolve_precision('auto'))"
"""

from __future__ import annotations

import torch

GPU_ACCELERATORS = ("auto", "gpu", "cuda")


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
