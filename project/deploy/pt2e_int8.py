"""Static int8 with PT2E: torch.export, torchao's X86InductorQuantizer (per-channel weights,
activations calibrated on images of the training split), convert, export again and save as a
``.pt2`` program (``python -m project quantize --backend pt2e``).

The saved program holds quantize/dequantize operators around fp32-shaped convolutions; it is fast
only under ``torch.compile`` (Inductor fuses the patterns into oneDNN int8 kernels), so
``compiled`` is how it is run and measured. Eager it is slower than fp32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from project.deploy.pt2 import export_program, load_program, save_program


def quantize_pt2e(network: nn.Module, calibration: torch.Tensor, settings: dict, output: Path):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    graph = export_program(network, settings["image_size"]).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for start in range(0, len(calibration), 32):  # observers record activation ranges
            prepared(calibration[start : start + 32])
    converted = drop_unused_weights(convert_pt2e(prepared))
    return save_program(export_program(converted, settings["image_size"]), settings, output)


def drop_unused_weights(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """convert_pt2e reads int8 copies of the weights but leaves the fp32 parameters registered;
    torch.export would save them too (the file then larger than fp32's). Remove the unread ones."""
    read = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    for name, _ in list(graph.named_parameters()) + list(graph.named_buffers()):
        if name not in read:
            owner, _, attribute = name.rpartition(".")
            delattr(graph.get_submodule(owner) if owner else graph, attribute)
    return graph


def compiled(path: str | Path) -> tuple[nn.Module, dict]:
    """The saved int8 program under torch.compile (Inductor's int8 kernels), and its settings."""
    import torchao.quantization.pt2e  # noqa: F401  registers the quantize/dequantize operators

    module, settings = load_program(path)
    return torch.compile(module, dynamic=True), settings
