"""Input pipeline: images per second the DataLoader delivers against what training consumes.

    python -m benchmarks.input_pipeline

Rows: the training DataLoader of configs/cnn.yaml (augmentation on) read from PNG files with one
worker, from the in-memory uint8 cache in the main process (the default) and with one worker; the
model's own rate (training steps on a batch already in memory). Then whole epochs of the manual loop
(fp32) with each pipeline, interleaved. Goals: loader >= 3 x model rate; file-fed epoch within 10%
of the cache-fed epoch.
"""

from __future__ import annotations

import tempfile
import time

import torch

from benchmarks.common import interleaved, quiet, ratio, spread, table, training_step_ms
from project.lit.datamodule import ImageDataModule
from project.manual.cli import run as manual_run
from project.models.cnn import SmallCNN

REPEATS = 3
PIPELINES = {
    "PNG files, 1 worker": {"cache_images": False, "num_workers": 1},
    "memory cache, main process (default)": {"cache_images": True, "num_workers": 0},
    "memory cache, 1 worker": {"cache_images": True, "num_workers": 1},
}


def loader_images_per_second(options: dict) -> float:
    data = ImageDataModule(**options)
    data.setup("fit")
    loader = data.train_dataloader()
    for _ in loader:  # warm-up epoch: worker start, first decode
        break
    start, seen = time.perf_counter(), 0
    for images, _ in loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def main() -> dict:
    torch.manual_seed(0)
    loader_rates = interleaved(
        {
            name: (lambda o=options: loader_images_per_second(o))
            for name, options in PIPELINES.items()
        },
        REPEATS,
    )
    network = SmallCNN(10)
    images, labels = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))
    model_rate = [64 / training_step_ms(network, images, labels, 20) * 1000 for _ in range(REPEATS)]
    rows = [[name, spread(rates, "", 0), f"{ratio(rates, model_rate):.2f}"]
            for name, rates in loader_rates.items()]  # fmt: skip
    rows.append(["model training steps (batch in memory)", spread(model_rate, "", 0), "1.00"])
    table("2a. Images per second: DataLoader (augmented) against the model's training rate",
          ["source", "images/s median (min-max)", "x model rate"], rows)  # fmt: skip

    folder = tempfile.mkdtemp(prefix="bench_pipeline_")
    epochs: dict[str, list[float]] = {}

    def epoch_time(options: dict):
        def measure() -> float:
            args = [
                "--config",
                "configs/cnn.yaml",
                "--trainer.precision=32-true",
                "--trainer.max_epochs=3",
                f"--trainer.logger.init_args.save_dir={folder}",
            ]
            args += [f"--data.{key}={value}" for key, value in options.items()]
            with quiet():
                result = manual_run(["fit", *args])
            return min(e["time/epoch_seconds"] for e in result.history.epochs[1:])

        return measure  # fmt: skip

    epochs = interleaved({name: epoch_time(o) for name, o in PIPELINES.items()}, REPEATS)
    reference = epochs["memory cache, main process (default)"]
    rows = [[n, spread(v, " s", 3), f"{ratio(v, reference):.2f}"] for n, v in epochs.items()]
    table("2b. Epoch time of the manual loop (fp32, with validation) by input pipeline",
          ["source", "epoch s median (min-max)", "/ default"], rows)  # fmt: skip
    return {"loader_rates": loader_rates, "model_rate": model_rate, "epochs": epochs}


if __name__ == "__main__":
    main()
