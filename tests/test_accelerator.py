"""Accelerator options on the CPU: channels_last and torch.compile change speed, not results."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from project.core.recipe import prepare_network
from project.models.cnn import SmallCNN


def one_training_step(
    network: torch.nn.Module, images, labels, channels_last: bool
) -> torch.Tensor:
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loss = F.cross_entropy(network(images), labels)
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.parametrize(
    "channels_last, compile",
    [(True, False), pytest.param(False, True, marks=pytest.mark.slow)],
    ids=["channels_last", "compile"],
)
def test_an_option_trains_like_the_plain_network(channels_last, compile):
    torch.manual_seed(0)
    plain = SmallCNN(10, dropout=0.0)  # dropout masks would differ (compiled RNG)
    optimized = SmallCNN(10, dropout=0.0)
    optimized.load_state_dict(plain.state_dict())
    prepare_network(optimized, channels_last=channels_last, compile=compile)
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    expected = one_training_step(plain, images, labels, channels_last=False)
    got = one_training_step(optimized, images, labels, channels_last=channels_last)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    after = optimized.state_dict()
    assert list(after) == list(plain.state_dict())  # checkpoint keys unchanged (no _orig_mod.)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(after[key], value, atol=1e-5, rtol=1e-5)
    if channels_last:
        assert optimized.backbone[0][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_auto_follows_precision_and_device():
    """The rule of project/core/precision.py: NHWC in reduced precision on hardware made for it."""
    from project.core.precision import cpu_has_native_bf16, resolve_channels_last
    from project.core.recipe import CNNRecipe

    assert resolve_channels_last("auto", "cpu", "32-true") is False
    assert resolve_channels_last("auto", "cpu", "bf16-mixed") is cpu_has_native_bf16()
    assert resolve_channels_last("auto", "cuda", "16-mixed") is True
    assert resolve_channels_last("auto", "cuda", "32-true") is False
    assert resolve_channels_last(True, "cpu", "32-true") is True  # an explicit choice wins
    recipe = CNNRecipe(channels_last="auto")
    said = recipe.prepare_network("cpu", "32-true")
    assert said == "channels_last: auto -> False (32-true on cpu)"
    weight = recipe.network.backbone[0][0].weight
    assert not weight.is_contiguous(memory_format=torch.channels_last)
    recipe = CNNRecipe(channels_last="auto")
    recipe.prepare_network("cpu", "bf16-mixed")
    weight = recipe.network.backbone[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) is cpu_has_native_bf16()
    assert recipe.channels_last is cpu_has_native_bf16()  # forward makes batches NHWC then
