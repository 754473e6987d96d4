"""Pretrained weights: what ``weights:`` may name, where the file lives, and a helper command.

    python -m project weights resnet18                  # DEFAULT weights: cached? else download
    python -m project weights efficientnet_b0 IMAGENET1K_V1
    python -m project weights ResNet50_Weights.IMAGENET1K_V2 --no-download   # where it must go

``weights:`` in a config is one of
  - ``DEFAULT`` or a member of the backbone's weights enum (``IMAGENET1K_V1``; the full name
    ``ResNet18_Weights.IMAGENET1K_V1`` works too): torchvision's file, read from its cache folder
    $TORCH_HOME/hub/checkpoints/ (TORCH_HOME: ~/.cache/torch), downloaded there when missing;
  - a path to a ``.pth`` state_dict of the same torchvision model, or a project ``.ckpt``;
  - null: random initialisation.

Offline, a missing file is one line (exit status 2) that names the file, the folder and the URL to
fetch it from on a connected machine. The helper downloads with torch.hub, which checks the file
against the hash prefix in its name (``resnet18-f37072fd.pth``: sha256 starts f37072fd).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import WeightsEnum, get_model_weights, get_weight

from project.core.errors import InputError, exit_on_error

DOWNLOAD_TIMEOUT_S = 20  # no network must fail fast, never hang


class WeightsError(InputError, RuntimeError):
    """Pretrained weights could not be found or do not fit the model."""


def is_random(weights: str | None) -> bool:
    return weights is None or str(weights).lower() in ("none", "null", "")


def weights_enum(backbone: str, name: str) -> WeightsEnum | None:
    """The torchvision weights ``name`` names for ``backbone``; None if it is no weights name."""
    try:
        if "." in name and name.split(".")[0].endswith("_Weights"):
            return get_weight(name)  # "ResNet18_Weights.IMAGENET1K_V1"
        members = get_model_weights(backbone)
    except (KeyError, ValueError, AttributeError):
        return None
    return members.DEFAULT if name == "DEFAULT" else members.__members__.get(name)


def known_names(backbone: str) -> str:
    try:
        return ", ".join(["DEFAULT", *get_model_weights(backbone).__members__])
    except (KeyError, ValueError):
        return "none: torchvision has no weights for this model"


def cache_file(weights: WeightsEnum) -> Path:
    """Where torchvision's ``get_model(..., weights=...)`` looks for (and saves) this file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def where_to_put(weights: WeightsEnum) -> str:
    path = cache_file(weights)
    return (
        f"pretrained weights {weights} not found: expected the file {path.name} in {path.parent}; "
        f"fetch {weights.url} on a connected machine (python -m project weights "
        f"{type(weights).__name__}.{weights.name} does it) and copy it there, or pass a local "
        "file with --model.init_args.weights PATH.pth"
    )


def ensure_cached(weights: WeightsEnum, download: bool) -> Path:
    """The cached file of ``weights``; downloaded (hash-checked) first if missing and allowed."""
    path = cache_file(weights)
    if path.is_file():
        return path
    if not download:
        raise WeightsError(where_to_put(weights) + " (downloading is off: download: false)")
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        # Into a temporary file, renamed when complete; the sha256 must start with the hex
        # digits in the file name (hash_prefix), else the download is refused.
        torch.hub.download_url_to_file(
            weights.url, str(path), hash_prefix=match.group(1) if match else None, progress=False
        )
    except Exception as error:  # any network or hash failure ends in the same clear line
        raise WeightsError(f"{where_to_put(weights)}; downloading failed: {error}") from error
    finally:
        socket.setdefaulttimeout(previous)
    return path


def hash_matches(path: Path) -> bool | None:
    """Whether the file's sha256 starts with the prefix in its name (None: the name has none)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None:
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest.startswith(match.group(1))


# ----------------------------------------------------------------------------- the command


def parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m project weights",
        description="Download torchvision weights into the cache folder, or say where they go.",
    )
    parser.add_argument("name", help="a model (resnet18) or a weights name (ResNet18_Weights.V1)")
    parser.add_argument("weights", nargs="?", default="DEFAULT", help="enum member: DEFAULT")
    parser.add_argument(
        "--no-download", action="store_true", help="only check the cache; print where it goes"
    )
    return parser.parse_args(args)


def command(args: list[str]) -> int:
    options = parse(args)
    name = options.name if "_Weights." in options.name else options.weights
    weights = weights_enum(options.name, name)
    if weights is None:
        raise WeightsError(
            f"no torchvision weights {name!r} for {options.name!r} (known: "
            f"{known_names(options.name)})"
        )
    path = ensure_cached(weights, download=not options.no_download)
    if hash_matches(path) is False:
        raise WeightsError(
            f"{path}: its sha256 does not match the hash in its name: fetch it again"
        )
    print(f"{weights}: {path} ({path.stat().st_size / 2**20:.1f} MiB, hash checked)")
    return 0


def main(args: list[str] | None = None) -> int:
    with exit_on_error():  # a missing file offline: one line on stderr, exit status 2
        return command(sys.argv[1:] if args is None else args)


if __name__ == "__main__":
    raise SystemExit(main())
