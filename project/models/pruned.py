"""Networks with fewer channels than their class builds: the recorded widths and the rebuild.

    widths = layer_widths(pruned_network)        # {"backbone.0.0": [3, 22, 1], ...}
    network = SmallCNN(10)                       # the class's own widths
    shrink_to(network, widths)                   # now the pruned shapes; load its weights next

``python -m project prune`` (project/deploy/prune.py) removes channels with Torch-Pruning; what it
changed is the width of some Conv2d, BatchNorm and Linear layers, nothing else. A checkpoint
therefore records those widths (``model.init_args.pruning.layers``, plain lists of ints in its
hyper_parameters) instead of pickling the pruned modules: the recipe builds the network as
usual, ``shrink_to`` resizes the recorded layers, and the checkpoint's weights then load
strictly, with ``torch.load(weights_only=True)``. So ``test``, ``predict``, ``export``, the manual
loop and a resumed ``fit`` rebuild a pruned network the way they rebuild any other.

Recorded per layer: Conv*d ``[in_channels, out_channels, groups]``, BatchNorm*d ``[num_features]``,
Linear ``[in_features, out_features]``. A resized layer gets freshly
initialized weights (``reset_parameters``): a pruned network trained from scratch starts like any
other. Plain PyTorch, no Torch-Pruning and no Lightning import.
"""

from __future__ import annotations

from torch import nn

from project.core.errors import InputError

RESIZABLE = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.Linear)


class PruningRecordError(InputError):
    """A recorded layer width does not fit the network the recipe built."""


def widths_of(module: nn.Module) -> list[int]:
    """The numbers that fix a resizable layer's parameter shapes (see the module docstring)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return [module.in_channels, module.out_channels, module.groups]
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return [module.num_features]
    return [module.in_features, module.out_features]


def layer_widths(network: nn.Module) -> dict[str, list[int]]:
    """Every resizable layer's widths, by its dotted name in ``network``."""
    return {
        name: widths_of(module)
        for name, module in network.named_modules()
        if isinstance(module, RESIZABLE)
    }


def changed_widths(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict:
    """The layers whose widths differ between two ``layer_widths`` maps (what a record keeps)."""
    return {name: widths for name, widths in after.items() if before.get(name) != widths}


def _resize(module: nn.Module, widths: list[int]) -> None:
    # The attributes the layer's forward and reset_parameters read; reset_parameters then makes
    # parameters of the new shapes (it fills them in place, so they are created here first).
    if isinstance(module, nn.modules.conv._ConvNd):
        module.in_channels, module.out_channels, module.groups = widths
        shape = (module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        module.weight = nn.Parameter(module.weight.new_empty(shape))
        if module.bias is not None:
            module.bias = nn.Parameter(module.bias.new_empty(module.out_channels))
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        (module.num_features,) = widths
        for name in ("weight", "bias"):
            if getattr(module, name) is not None:
                setattr(module, name, nn.Parameter(getattr(module, name).new_empty(widths[0])))
        for name in ("running_mean", "running_var"):
            if getattr(module, name) is not None:
                setattr(module, name, getattr(module, name).new_empty(widths[0]))
    else:
        module.in_features, module.out_features = widths
        module.weight = nn.Parameter(module.weight.new_empty(widths[1], widths[0]))
        if module.bias is not None:
            module.bias = nn.Parameter(module.bias.new_empty(widths[1]))
    module.reset_parameters()


def shrink_to(network: nn.Module, widths: dict[str, list[int]]) -> nn.Module:
    """Resize the named layers of a freshly built ``network`` to the recorded ``widths``.

    A name that is not a resizable layer of this network, or a list of the wrong length, is an
    error naming the layer: the record belongs to another network."""
    modules = dict(network.named_modules())
    for name, numbers in widths.items():
        module = modules.get(name)
        if not isinstance(module, RESIZABLE):
            found = "no such layer" if module is None else type(module).__name__
            raise PruningRecordError(
                f"pruning record names layer {name!r}, which this network does not have as a "
                f"Conv, BatchNorm or Linear ({found}): it was pruned from another network"
            )
        numbers = [int(n) for n in numbers]
        if len(numbers) != len(widths_of(module)):
            raise PruningRecordError(
                f"pruning record for {name!r} has {len(numbers)} numbers, a "
                f"{type(module).__name__} needs {len(widths_of(module))}"
            )
        if numbers != widths_of(module):
            _resize(module, numbers)
    return network
