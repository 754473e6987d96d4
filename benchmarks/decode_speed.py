"""Decode speed: load_image (torchvision for plain PNG/JPEG) against the PIL-only path it replaced.

    python -m benchmarks.decode_speed

Both return the same 3 x H x W uint8 tensor (tests/test_decode.py). Files are written once under a
temporary folder: photo-like images (gradients and noise) of 500x375 as JPEG (quality 90) and PNG,
and 2000x1500 as JPEG. Each candidate reads every file of a kind in turn, interleaved, in one
thread (a DataLoader worker decodes in one thread too). Images per second, median (min-max).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from benchmarks.common import interleaved, ratio, spread, table
from project.data.images import load_image, to_rgb

REPEATS = 5
KINDS = {  # name: (width, height, format, count)
    "JPEG 500x375": (500, 375, "JPEG", 40),
    "PNG 500x375": (500, 375, "PNG", 40),
    "JPEG 2000x1500": (2000, 1500, "JPEG", 8),
}


def pil_only(path: Path) -> torch.Tensor:
    """load_image before project/data/decode.py: PIL decodes, to_rgb, numpy, tensor."""
    with Image.open(path) as image:
        image.seek(0)
        image.load()
        rgb = to_rgb(ImageOps.exif_transpose(image))
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def write_files(folder: Path, width: int, height: int, format: str, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    paths = []
    for index in range(count):
        phase = rng.uniform(0, 6.3, 3)
        base = np.stack([np.sin(6 * x + phase[0]) * y, np.cos(4 * y + phase[1]) * x,
                         np.sin(5 * (x + y) + phase[2])], axis=-1)  # fmt: skip
        pixels = (base * 80 + 128 + rng.normal(0, 10, base.shape)).clip(0, 255).astype(np.uint8)
        path = folder / f"{width}x{height}_{index}.{format.lower()}"
        Image.fromarray(pixels).save(path, format, **({"quality": 90} if format == "JPEG" else {}))
        paths.append(path)
    return paths


def images_per_second(read, paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        read(path)
    return len(paths) / (time.perf_counter() - start)


def main() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench_decode_"))
    rows, results = [], {}
    for kind, spec in KINDS.items():
        paths = write_files(folder, *spec)
        assert all(torch.equal(load_image(p), pil_only(p)) for p in paths)  # the same pixels
        rates = interleaved(
            {"pil": lambda p=paths: images_per_second(pil_only, p),
             "load_image": lambda p=paths: images_per_second(load_image, p)},
            REPEATS,
        )  # fmt: skip
        results[kind] = rates
        rows.append([kind, spread(rates["pil"], "", 0), spread(rates["load_image"], "", 0),
                     f"{ratio(rates['load_image'], rates['pil']):.2f}"])  # fmt: skip
    torch.set_num_threads(threads)
    table(
        f"10. Decoding, one thread: images/s median (min-max) of {REPEATS} interleaved passes "
        "(load_image: torchvision for plain RGB/grey PNG and JPEG; same pixels)",
        ["files", "PIL only (before)", "load_image (now)", "speed-up"],
        rows,
    )
    return results


if __name__ == "__main__":
    main()
