"""Big photos: peak memory and epoch time of the default config on a folder of large JPEGs.

    python -m benchmarks.big_photos                  # 300 photos of 2000 x 1500 (make bench)
    python -m benchmarks.big_photos --count 3000     # a few thousand (about 10 GB of pixels)

Writes the photos once under /tmp (photo-like: gradients and noise, about 1 MB each as JPEG), then
runs ``python -m project fit --config configs/cnn.yaml --data.root PHOTOS`` for one epoch in fresh
processes, with ``cache_images`` auto (the default) and false, beside the same one-epoch run on the
bundled digits. Peak memory is the process's own maximum resident set size (``os.wait4``); epoch
time is ``time/epoch_seconds`` from the run's event file. Goal (issue 15): the photos' peak within
25% of the digits' peak, with the default config.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import interleaved, spread, table
from project.runs.curves import read_scalars

WIDTH, HEIGHT = 2000, 1500


def write_photos(root: Path, count: int) -> Path:
    """``count`` photo-like JPEGs in 2 class folders (kept between runs: written once)."""
    done = root / f".complete-{count}"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(0, 1, WIDTH + 200), np.linspace(0, 1, HEIGHT + 200))
    base = np.stack([np.sin(6 * x) * y, np.cos(4 * y) * x, np.sin(5 * (x + y))], axis=-1)
    base = (base * 80 + 128).astype(np.int16)
    noise = rng.integers(-12, 13, size=base.shape, dtype=np.int16)
    for index in range(count):
        dx, dy, nx, ny = rng.integers(0, 200, size=4)  # each photo a different crop of both
        pixels = base[dy : dy + HEIGHT, dx : dx + WIDTH] + noise[ny : ny + HEIGHT, nx : nx + WIDTH]
        folder = root / ("a" if index % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        image.save(folder / f"{index:05d}.jpg", quality=90)
    done.touch()
    return root


def measure(extra: list[str], log_dir: str) -> dict[str, float]:
    """One fresh fit process, reaped with os.wait4 for its own peak RSS (not its children's)."""
    command = [sys.executable, "-m", "project", "fit", "--config", "configs/cnn.yaml",
               "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
               "--trainer.enable_model_summary=false",
               f"--trainer.logger.init_args.save_dir={log_dir}", *extra]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(errors.read().decode()[-2000:])
    runs = sorted(Path(log_dir, "cnn").glob("version_*"), key=lambda p: p.stat().st_mtime)
    epoch = read_scalars(runs[-1])["time/epoch_seconds"][1][0]
    return {"peak_gb": usage.ru_maxrss * 1024 / 1e9, "wall": wall, "epoch": epoch}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folder", default=f"{tempfile.gettempdir()}/bench_big_photos")
    options = parser.parse_args(argv if argv is not None else [])
    started = time.perf_counter()
    photos = write_photos(Path(options.folder) / str(options.count), options.count)
    written = time.perf_counter() - started
    size = sum(path.stat().st_size for path in photos.rglob("*.jpg")) / 1e6
    log_dir = tempfile.mkdtemp(prefix="bench_big_photos_logs_")
    runs = {
        "digits (bundled), default config": [],
        f"{options.count} photos, default config (cache_images auto)": [f"--data.root={photos}"],
        f"{options.count} photos, cache_images false": [
            f"--data.root={photos}",
            "--data.cache_images=false",
        ],
    }
    results = interleaved(
        {name: (lambda e=extra: measure(e, log_dir)) for name, extra in runs.items()},
        options.repeats,
    )
    digits_peak = [r["peak_gb"] for r in results["digits (bundled), default config"]]
    rows = []
    for name, measured in results.items():
        peaks = [r["peak_gb"] for r in measured]
        rows.append([name, spread(peaks, " GB", 2),
                     f"{np.median(peaks) / np.median(digits_peak):.2f}",
                     spread([r["epoch"] for r in measured], " s", 1),
                     spread([r["wall"] for r in measured], " s", 1)])  # fmt: skip
    table(
        f"9. Big photos: one epoch of configs/cnn.yaml, {options.count} JPEGs of {WIDTH}x{HEIGHT} "
        f"({size:.0f} MB on disk, written in {written:.0f} s); {options.repeats} interleaved fresh "
        "processes each; goal: photos' peak <= 1.25 x digits' peak",
        ["run", "peak RSS", "/ digits", "epoch (with validation)", "process wall"],
        rows,
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
