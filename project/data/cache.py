"""The decoded-image cache, sized so that it cannot exhaust memory (``data.cache_images``).

Caching decodes every image once, so later epochs skip PNG/JPEG decoding. Two rules keep it safe:

1. Images are cached at the training resolution, not at full size: each image is resized once,
   deterministically (antialiased, aspect ratio kept), so that its shorter side is
   ``CACHE_SIDE_FACTOR x image_size`` pixels; an image already that small is kept as it is (never
   enlarged). Twice the training size keeps enough pixels for what the transforms take
   afterwards: the "natural" augmentation's random crop covers at least half of the image's area
   (at least 0.61 of a side, then scaled up to ``image_size``), and the evaluation resize (to
   ``image_size``, or resize-then-centre-crop) only shrinks further. A 2000x1500 photo for a 16 px
   model is cached as 43x32 pixels: 4 KB instead of 9 MB.
   When every transform starts with the same square resize to ``image_size`` x ``image_size``
   (the "digits" and "none" augmentations with square evaluation), the cache holds the images
   resized exactly so (``square``): that resize then runs once here instead of once an image an
   epoch, on the same pixels, so the batches are identical (the 8x8 digits are cached at 16x16).
2. The cache's size is estimated before anything is decoded (from the headers of up to
   ``SAMPLE_FILES`` files spread over the data) and compared with a budget: ``MEMORY_SHARE`` of
   the memory available when the data is set up (``MemAvailable``, or the container's limit when
   lower). ``auto`` (the default) caches when the estimate fits and otherwise reads the files every
   epoch, saying why in one line; ``true`` over the budget is an error before decoding starts;
   ``false`` never caches.

    python -c "from project.data.cache import available_memory; print(available_memory())"
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from project.data.datasets import DataError

CacheOption = bool | Literal["auto"]
MEMORY_SHARE = 0.25  # of the available memory: room left for the model, workers and the OS
CACHE_SIDE_FACTOR = 2  # cached shorter side = 2 x image_size (see the module docstring)
SAMPLE_FILES = 200  # headers read to estimate the cache's size
OVERHEAD_BYTES = 400  # per cached image: the tensor object and its list entry


class CacheTooLarge(DataError):
    """``cache_images: true`` would need more memory than the budget."""


def gigabytes(size: float) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


def available_memory() -> int:
    """Bytes of memory this process can still use: MemAvailable, or the cgroup's room if lower."""
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:  # not Linux: the free physical pages
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 8 * 2**30  # unknown: assume a modest machine
    try:  # a container's limit (cgroup v2) can be far below the machine's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(available, 0)


def cached_size(width: int, height: int, side: int, square: bool = False) -> tuple[int, int]:
    """(width, height) of an image once cached: shorter side ``side``, never enlarged; with
    ``square``, exactly ``side`` x ``side`` (the resize every transform would make anyway)."""
    if square:
        return side, side
    shorter = min(width, height)
    if shorter <= side:
        return width, height
    scale = side / shorter
    return max(1, round(width * scale)), max(1, round(height * scale))


def release_freed_memory() -> None:
    """Hand memory that is free but still held by the C allocator back to the OS (glibc only).

    Filling the cache alternates large short-lived buffers (a decoded 2000x1500 photo: 9 MB) with
    small long-lived ones (its 4 KB cached copy). glibc then keeps the freed large blocks, pinned
    behind the small ones, in its heaps: measured, a 2000-photo cache of 9 MB peaked near 2.8 GB
    of resident memory. malloc_trim returns those free pages.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to do
        pass


def shrinker(
    side: int, square: bool = False, trim_every: int = 32
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The deterministic resize applied once to every cached image (3 x H x W uint8)."""
    count = 0

    def shrink(image: torch.Tensor) -> torch.Tensor:
        nonlocal count
        height, width = image.shape[-2:]
        new_width, new_height = cached_size(width, height, side, square)
        if (new_width, new_height) == (width, height):
            return image
        count += 1
        if count % trim_every == 0:
            release_freed_memory()
        return TF.resize(image, [new_height, new_width], antialias=True)

    return shrink


def sampled_sizes(paths: Sequence[Path]) -> list[tuple[int, int]]:
    """(width, height) of up to ``SAMPLE_FILES`` files spread over ``paths``, from their headers
    only (PIL opens lazily). Unreadable files are left out; they fail later, when decoded, with
    their own error."""
    step = max(1, len(paths) // SAMPLE_FILES)
    sizes = []
    for path in paths[::step][:SAMPLE_FILES]:
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
        except Exception:  # noqa: BLE001 - any unreadable header: its decode reports it later
            continue
    return sizes


def estimate_bytes(sizes: Sequence[tuple[int, int]], count: int, side: int, square: bool) -> int:
    """Memory the cache of ``count`` images would take: the sample's mean cached size x count."""
    if not sizes:
        return 0
    cached = [cached_size(width, height, side, square) for width, height in sizes]
    per_image = [3 * width * height + OVERHEAD_BYTES for width, height in cached]
    return round(sum(per_image) / len(per_image) * count)


@dataclass(frozen=True)
class CachePlan:
    """Whether to cache, at which shorter side, and the figures behind the decision."""

    enabled: bool
    side: int
    estimate: int
    budget: int
    message: str
    square: bool = False

    def shrink(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return shrinker(self.side, self.square)


def plan_cache(
    option: CacheOption,
    paths: Sequence[Path],
    image_size: int,
    budget: int | None = None,
    square: bool = False,
) -> CachePlan:
    """Decide on caching ``paths`` (every split's files) for ``option``: True, False or "auto".

    ``budget`` in bytes; None: ``MEMORY_SHARE`` of the available memory. ``square``: every
    transform begins with a resize to ``image_size`` x ``image_size``, so cache exactly that;
    enlarging small images can make that bigger than the usual cache, so when the square cache
    does not fit the budget, the usual one (shorter side at most 2 x image_size) is planned.
    Raises CacheTooLarge for ``True`` when the estimate exceeds the budget.
    """
    if option is False or option == "false":
        side = image_size if square else CACHE_SIDE_FACTOR * image_size
        return CachePlan(
            False, side, 0, 0, "cache_images: false, images are read every epoch", square
        )
    if budget is None:
        available = available_memory()
        budget = int(MEMORY_SHARE * available)
        source = f"{MEMORY_SHARE:.0%} of the {gigabytes(available)} of memory available"
    else:
        source = "given"
    sizes = sampled_sizes(paths)  # the headers are read once, for either size of cache
    estimate = estimate_bytes(sizes, len(paths), image_size, square=True) if square else None
    if estimate is not None and estimate <= budget:
        side = image_size
    else:  # not square, or small images enlarged past the budget: the usual cache
        square, side = False, CACHE_SIDE_FACTOR * image_size
        estimate = estimate_bytes(sizes, len(paths), side, square=False)
    size = f"at {side}x{side} px" if square else f"at a shorter side of at most {side} px"
    figures = (
        f"{len(paths)} images cached {size} need about "
        f"{gigabytes(estimate)}; the budget is {gigabytes(budget)} ({source})"
    )
    if estimate <= budget:
        message = f"cache_images: {option}: {figures}"
        return CachePlan(True, side, estimate, budget, message, square)
    if option is True or option == "true":
        raise CacheTooLarge(
            f"cache_images: true: {figures}. Use data.cache_images auto (caches only what fits) "
            "or false, or a smaller data.image_size"
        )
    message = f"cache_images: auto: off, images are read from disk every epoch: {figures}"
    return CachePlan(False, side, estimate, budget, message, square)
