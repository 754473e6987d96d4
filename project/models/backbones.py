"""Any torchvision classification model as a ``backbone``: its head found, cut off and measured.

    from project.models.backbones import build_backbone
    body, in_features, head_path = build_backbone("efficientnet_b0")   # random weights

torchvision's classifiers end in a linear layer with 1000 outputs, but each family keeps it in a
different place. ``head_path`` is found, not typed per model: the last ``nn.Linear`` registered
in the model, which is where every family puts its classifier:

    resnet*, resnext*, wide_resnet*, regnet*, googlenet  fc
    efficientnet*, mobilenet_v2                          classifier.1   (after Dropout)
    mobilenet_v3_*                                       classifier.3   (after a hidden Linear)
    convnext_*                                           classifier.2   (after LayerNorm, Flatten)
    vit_*                                                heads.head
    swin_*                                               head

It is replaced by ``nn.Identity``, so the body returns the features the old head read, and its
``in_features`` sizes the new head (never hard-coded). Models without a final Linear (squeezenet's
last layer is a convolution) are refused with a clear error.

``last_block_start`` names the first parameter of the last stage of each family, for gradual
unfreezing (the last block, then everything): from that parameter to the end of the body.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import get_model, list_models

from project.models.weights import WeightsError


def classification_models() -> list[str]:
    return list_models(module=__import__("torchvision").models)


def find_head(model: nn.Module) -> str:
    """The dotted name of the model's final classifier: its last registered ``nn.Linear``."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise WeightsError(f"{type(model).__name__} has no final nn.Linear to replace with a head")
    return linears[-1]


def build_backbone(name: str, **options) -> tuple[nn.Module, int, str]:
    """(body with its head replaced by Identity, the head's in_features, the head's dotted name).

    ``options`` go to torchvision's builder (e.g. ``image_size=32`` for vit_*: its position
    embedding is sized for one image size).
    """
    if name not in classification_models():
        raise WeightsError(
            f"unknown backbone {name!r}: use a torchvision classification model "
            "(torchvision.models.list_models(module=torchvision.models))"
        )
    body = get_model(name, weights=None, **options)
    head_path = find_head(body)
    parent_path, _, leaf = head_path.rpartition(".")
    parent = body.get_submodule(parent_path) if parent_path else body
    in_features = getattr(parent, leaf).in_features
    setattr(parent, leaf, nn.Identity())  # the body now returns the head's input features
    return body, in_features, head_path


def last_block_start(name: str, body: nn.Module) -> str:
    """Name prefix of the first parameter of the body's last stage (see the module docstring)."""
    if name.startswith(("resnet", "resnext", "wide_resnet")):
        return "layer4."
    if name.startswith("vit_"):
        last = list(body.encoder.layers.named_children())[-1][0]
        return f"encoder.layers.{last}."
    if name.startswith("regnet"):
        return "trunk_output.block4."
    if name.startswith("densenet"):
        return "features.denseblock4."
    if name.startswith(("efficientnet", "mobilenet")):
        # features[-1] is a 1x1 expansion conv; the last stage of blocks comes before it.
        return f"features.{len(body.features) - 2}."
    if name.startswith(("convnext", "swin", "maxvit")):
        return f"features.{len(body.features) - 1}."
    # Other families: the last top-level child that holds parameters.
    children = [n for n, child in body.named_children() if any(True for _ in child.parameters())]
    return f"{children[-1]}."


def last_block_parameters(name: str, body: nn.Module) -> list[str]:
    """Names of the body's parameters from the last stage's first one to the end."""
    names = [n for n, _ in body.named_parameters()]
    prefix = last_block_start(name, body)
    first = next(i for i, n in enumerate(names) if n.startswith(prefix))
    return names[first:]
