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


def quantize_pt2e(
    network: nn.Module, calibration: torch.Tensor, settings: dict, output: Path
) -> dict:
    """Write the int8 program of ``network`` to ``output``; returns ``int8_weights`` of it."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    # strict (TorchDynamo) export: it names each call of a module apart. torchvision's residual
    # blocks call one nn.ReLU twice; non-strict export gives both calls one source partition,
    # which the x86 quantizer refuses ("Input partition has more than one output node").
    graph = export_program(network, settings["image_size"], strict=True).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for start in range(0, len(calibration), 32):  # observers record activation ranges
            prepared(calibration[start : start + 32])
    converted = drop_unused_weights(convert_pt2e(prepared))
    share = int8_weights(converted)
    save_program(export_program(converted, settings["image_size"]), settings, output)
    return share


WEIGHTED = ("aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.linear", "aten.convolution")


def int8_weights(graph: torch.fx.GraphModule) -> dict:
    """How much of the convolution and linear weights the converted graph holds as int8:
    {"int8": elements, "float": elements, "layers": (int8 layers, all layers)}. A weight that
    reaches its layer through a dequantize node is int8; one read directly is float."""
    counts = {"int8": 0, "float": 0}
    layers = [0, 0]
    for node in graph.graph.nodes:
        if node.op != "call_function" or not str(node.target).startswith(WEIGHTED):
            continue
        weight = node.args[1]
        source = weight
        while source.op == "call_function" and source.all_input_nodes:
            source = source.all_input_nodes[0]  # dequantize(int8 tensor, scales, ...)
        if source.op != "get_attr":
            continue
        tensor = _attribute(graph, source.target)
        kind = "int8" if tensor.dtype in (torch.int8, torch.uint8) else "float"
        counts[kind] += tensor.numel()
        layers[0] += kind == "int8"
        layers[1] += 1
    return {**counts, "layers": tuple(layers)}


def _attribute(module: torch.nn.Module, dotted: str) -> torch.Tensor:
    owner, _, name = dotted.rpartition(".")
    return getattr(module.get_submodule(owner), name)  # get_submodule(""): the module itself


def int8_share(counts: dict) -> float:
    total = counts["int8"] + counts["float"]
    return counts["int8"] / total if total else 0.0


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
