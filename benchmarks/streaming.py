"""Streaming: images/s and peak memory of training epochs from image folders and LitData shards.

    python -m benchmarks.streaming                 # digits + 3,000 photos (+ a 10x copy), 1 round
    python -m benchmarks.streaming --rounds 3      # each variant 3 times, interleaved
    python -m benchmarks.streaming --quick         # smoke run: 300 photos (10x: 3,000), digits
    python -m benchmarks.streaming --photos 1000   # a smaller photo set (its 10x copy: 10,000)

What is timed is the training DataLoader of ``ImageData`` (project/data/pipeline.py), iterated
with the training transforms as both loops iterate it; no model (and no device-side batch
augmentation, which is the same work whatever the source). Each variant runs in a fresh Python
process (``--measure``): the data is built, ``setup("fit")``, then two epochs are iterated
(``set_stream_epoch`` between them, as the loops do). "Cold" is the first epoch counted from
building the data (the image cache's fill, LitData's index reads, workers starting: what a run
pays before its first epoch ends); "warm" is the second epoch alone. The OS page cache is warm
(the files were just written): on a cold disk the first epoch is slower for every source.

Peak memory: the process's own peak RSS (VmHWM in /proc/self/status) and the largest peak RSS of
its DataLoader workers (``getrusage(RUSAGE_CHILDREN)``, once the workers have exited). RSS counts
pages a forked worker shares with its parent in both.

Datasets: the bundled digits (configs/cnn.yaml's data: 16 px, augmentation digits) and a
generated folder of photo-like 256 x 256 JPEGs in 2 classes (smooth gradients plus noise, each a
different one; 64 px and augmentation natural, as configs/resnet18.yaml with photos), and for
memory flatness a 10x copy of it (hard links under other names), written as its own shards and
read with 1 worker only (its epochs are the longest here), with the default 64 MB chunks and with
8 MB chunks (LitData maps the chunks it reads into memory: the 3,000 photos' training split fits
about one 64 MB chunk, the copy spans several). The shards are written by
``python -m project shards --workers 2``. Training split: 70% of each set. Fixed
mean/std (0.5), so no variant measures the normalization first.

Goals (issue 38): shards >= the folder without cache in images/s (like for like: 0 workers);
peak memory from shards of the 10x copy within 10% of the 3,000 photos'.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import spread, table

SIZE = 256
DIGITS = {"image_size": 16, "augmentation": "digits"}
PHOTOS = {"image_size": 64, "augmentation": "natural"}
VARIANTS = {  # name: ImageData options
    "folder, no cache": {"cache_images": False, "num_workers": 0},
    "folder, image cache": {"cache_images": True, "num_workers": 0},
    "shards, 0 workers": {"num_workers": 0},
    "shards, 1 worker": {"num_workers": 1},
    "shards, 2 workers": {"num_workers": 2},
}
# The 10x copy: one variant (its epochs are the longest here), with a worker: both peaks measured.
MEMORY_VARIANT = "shards, 1 worker"
# LitData maps the chunks it reads (and the next ones) into memory: file pages, counted in RSS.
# The 3,000 photos' training split fills about one 64 MB chunk, so the memory check is also run
# with small chunks, where both sets span many chunks and only the image count differs.
SMALL_CHUNK_MB = 8.0


# ---------------------------------------------------------------------- data


def write_photos(root: Path, count: int) -> Path:
    """``count`` photo-like JPEGs of SIZE x SIZE in class folders a/ and b/."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    for index in range(count):
        fx, fy, phase = rng.uniform(1, 6, size=3)
        colour = rng.uniform(40, 110, size=3)
        base = np.stack(
            [np.sin(fx * x + phase) * y, np.cos(fy * y + phase) * x, np.sin(fx * (x + y))], -1
        )
        pixels = base * colour + 128 + rng.normal(0, 8, size=base.shape)
        folder = root / ("a" if index % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        image.save(folder / f"{index:05d}.jpg", quality=90)
    return root


def link_copies(source: Path, target: Path, copies: int) -> Path:
    """``copies`` hard links of every image of ``source`` under other names: 10x the images."""
    for path in sorted(source.rglob("*.jpg")):
        folder = target / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            os.link(path, folder / f"c{copy}_{path.name}")
    return target


def write_shards(root: Path | None, output: Path, chunk_mb: float = 64.0) -> Path:
    """``python -m project shards`` (its progress output kept out of the tables)."""
    command = [sys.executable, "-m", "project", "shards", "--output", str(output), "--workers", "2",
               "--chunk_mb", str(chunk_mb)]  # fmt: skip
    if root is not None:
        command.append(f"--data.root={root}")
    subprocess.run(command, check=True, capture_output=True)
    return output


# ---------------------------------------------------------------------- one variant, in its process


def measure(spec: dict) -> dict:
    """Two epochs of the training loader of ``spec['data']`` (ImageData options)."""
    import torch

    from project.data.pipeline import ImageData
    from project.data.streaming import set_stream_epoch

    torch.manual_seed(0)
    started = time.perf_counter()
    data = ImageData(**spec["data"], mean=[0.5] * 3, std=[0.5] * 3, batch_size=64)
    data.setup("fit")
    loader = data.train_dataloader()
    epochs = []
    for epoch in range(2):
        set_stream_epoch(loader, epoch)
        start, seen = time.perf_counter(), 0
        for images, _ in loader:
            seen += len(images)
        ended = time.perf_counter()
        epochs.append(seen / (ended - (started if epoch == 0 else start)))
    del loader, data
    gc.collect()  # the folder loader's persistent workers exit (and are reaped) here
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    workers_mb = workers_kb / 1024 if spec["data"].get("num_workers") else 0.0
    return {"cold": epochs[0], "warm": epochs[1], "images": seen, "peak_mb": peak_kb / 1024,
            "workers_mb": workers_mb}  # fmt: skip


def fresh(data: dict) -> dict:
    """``measure`` in a fresh Python process."""
    spec = json.dumps({"data": data})
    command = [sys.executable, "-m", "benchmarks.streaming", "--measure", spec]
    run = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- the tables


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def show(results: list[dict], key: str, digits: int = 0) -> str:
    values = [r[key] for r in results]
    return spread(values, "", digits) if len(values) > 1 else f"{values[0]:.{digits}f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 photos, 1 round")
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes per variant")
    parser.add_argument("--photos", type=int, default=3000, help="generated photos")
    parser.add_argument("--copies", type=int, default=10, help="the memory check's copy: x N")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one variant, in this process
    options = parser.parse_args(argv if argv is not None else [])
    if options.measure:
        print(json.dumps(measure(json.loads(options.measure))))
        return {}
    if options.quick:
        options.photos, options.rounds = min(options.photos, 300), 1
    load_before = os.getloadavg()
    begun = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench_streaming_"))
    try:
        from project.data.pipeline import ImageData

        digits = ImageData()
        digits.prepare_data()  # the bundled digits, written to data/digits on first use
        photos = write_photos(folder / "photos", options.photos)
        copied = link_copies(photos, folder / "photos-x", options.copies)
        sources = {  # name: (folder, shards, transforms)
            "digits": (digits.root, write_shards(None, folder / "digits-shards"), DIGITS),
            f"{options.photos} photos": (
                photos,
                write_shards(photos, folder / "photos-shards"),
                PHOTOS,
            ),
        }
        big_shards = write_shards(copied, folder / "photos-x-shards")
        small_chunks = {
            "": write_shards(photos, folder / "photos-small", SMALL_CHUNK_MB),
            "x": write_shards(copied, folder / "photos-x-small", SMALL_CHUNK_MB),
        }
        prepared = time.perf_counter() - begun

        runs: dict[tuple[str, str], dict] = {}
        for name, (root, shards, transforms) in sources.items():
            for variant, settings in VARIANTS.items():
                shard = variant.startswith("shards")
                where = {"shards": str(shards)} if shard else {"root": str(root)}
                runs[name, variant] = {**transforms, **where, **settings}
        small = f"{options.photos} photos"
        big = f"{options.photos * options.copies} photos ({options.copies}x copy)"
        reader = VARIANTS[MEMORY_VARIANT]
        runs[big, MEMORY_VARIANT] = {**PHOTOS, "shards": str(big_shards), **reader}
        chunked = f", {SMALL_CHUNK_MB:.0f} MB chunks"
        pairs = [(small, big, "64 MB chunks"), (small + chunked, big + chunked, chunked[2:])]
        for name, copy in ((small + chunked, ""), (big + chunked, "x")):
            runs[name, MEMORY_VARIANT] = {**PHOTOS, "shards": str(small_chunks[copy]), **reader}
        results: dict[tuple[str, str], list[dict]] = {key: [] for key in runs}
        for round_ in range(options.rounds):  # interleaved: every variant once per round
            for key in reversed(runs) if round_ % 2 else runs:
                results[key].append(fresh(runs[key]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    rows = [
        [name, variant, show(r, "cold"), show(r, "warm"), show(r, "peak_mb"),
         show(r, "workers_mb") if runs[name, variant].get("num_workers") else "-"]
        for (name, variant), r in results.items()
    ]  # fmt: skip
    medians = " median (min-max)" if options.rounds > 1 else ""
    table(
        "Images/s of the training loader (transforms on, no model) and peak memory, fresh process "
        f"per variant, {options.rounds} round(s){medians}",
        ["data", "source", "cold epoch img/s", "warm epoch img/s", "peak RSS MB",
         "largest worker MB"],
        rows,
    )  # fmt: skip

    print("\nGoals (issue 38):")
    met = True
    for name in sources:
        folder_rate = median(results[name, "folder, no cache"], "warm")
        for variant in ("shards, 0 workers", "shards, 2 workers"):
            rate = median(results[name, variant], "warm")
            ok = rate >= folder_rate
            met &= ok if variant.endswith("0 workers") else True
            print(f"  {name}: {variant} {rate:.0f} img/s / folder no cache (0 workers) "
                  f"{folder_rate:.0f} img/s = {rate / folder_rate:.2f} (warm epoch)"
                  f"{' >= 1: met' if ok else ' < 1: NOT met'}")  # fmt: skip
    for one, ten, chunks in pairs:
        for key, label in (("peak_mb", "process"), ("workers_mb", "largest worker")):
            a = median(results[one, MEMORY_VARIANT], key)
            b = median(results[ten, MEMORY_VARIANT], key)
            ok = b <= 1.10 * a
            met &= ok
            verdict = " <= 1.10: flat" if ok else " > 1.10: NOT flat"
            print(f"  memory, {MEMORY_VARIANT}, {chunks}, {label}: "
                  f"{options.photos * options.copies} photos {b:.0f} MB / {options.photos} photos "
                  f"{a:.0f} MB = {b / a:.3f}{verdict}")  # fmt: skip
    load_after = os.getloadavg()
    print(f"  all goals {'met' if met else 'NOT all met'}")
    print(f"load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}; "
          f"after {', '.join(f'{v:.2f}' for v in load_after)}; writing the data and shards "
          f"{prepared:.0f} s, all {time.perf_counter() - begun:.0f} s")  # fmt: skip
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
