"""project/core/precision.py: "auto" picks a native precision; an explicit precision always wins."""

from __future__ import annotations

import pytest
import torch

from project.core import precision
from project.core.precision import resolve_precision


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", 32])
def test_explicit_precision_wins(explicit):
    assert resolve_precision(explicit) == explicit


def test_auto_on_cpu_follows_native_bf16_support(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", accelerator="cpu") == "32-true"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", accelerator="cpu") == "bf16-mixed"


def test_auto_on_this_machine_matches_its_cpu_flags():
    if torch.cuda.is_available():
        pytest.skip("a GPU picks a CUDA precision")
    flags = open("/proc/cpuinfo").read().split()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert resolve_precision("auto") == ("bf16-mixed" if native else "32-true")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_cuda_is_mixed():
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert resolve_precision("auto") == expected
