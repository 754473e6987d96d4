"""Frozen backbone: ResNet18 step time and activation memory, backbone frozen against trained.

    python -m benchmarks.frozen_backbone

Memory is the bytes of tensors autograd saves for backward during one forward pass (counted with
torch.autograd.graph.saved_tensors_hooks): a frozen backbone runs without a graph, so it should
save almost nothing but the head's input. On a GPU, torch.cuda.max_memory_allocated is added.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved, ratio, spread, table, training_step_ms
from project.models.resnet import ResNetTransfer

REPEATS, STEPS, BATCH, SIZE = 5, 5, 32, 64


def saved_for_backward_mib(network, images, labels) -> float:
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = F.cross_entropy(network(images), labels)
    loss.backward()
    network.zero_grad(set_to_none=True)
    return saved / 2**20


def main() -> dict:
    torch.manual_seed(0)
    images, labels = torch.randn(BATCH, 3, SIZE, SIZE), torch.randint(0, 10, (BATCH,))
    networks = {
        "frozen": ResNetTransfer(10, weights=None),
        "trained": ResNetTransfer(10, weights=None),
    }
    networks["frozen"].set_backbone_frozen(True)
    steps = {
        name: partial(training_step_ms, n, images, labels, STEPS) for name, n in networks.items()
    }
    times = interleaved(steps, REPEATS)
    memory = {
        name: saved_for_backward_mib(n.train(), images, labels) for name, n in networks.items()
    }
    table(
        f"6. ResNet18 backbone frozen vs trained (batch {BATCH} at {SIZE} px, fp32)",
        ["backbone", "ms/step median (min-max)", "saved for backward"],
        [[name, spread(times[name], " ms"), f"{memory[name]:.2f} MiB"] for name in networks],
    )
    print(f"frozen / trained step time = {ratio(times['frozen'], times['trained']):.2f}")
    return {"times": times, "memory": memory}


if __name__ == "__main__":
    main()
