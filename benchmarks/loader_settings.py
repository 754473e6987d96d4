"""How many DataLoader workers, what batch size: measured on this machine, with a table and advice.

    python -m benchmarks.loader_settings                       # the bundled digits, SmallCNN
    python -m benchmarks.loader_settings --root my_images --image-size 64 --model resnet18
    python -m benchmarks.loader_settings --workers 0 1 2 4 --batch-sizes 64 256

For every batch size and ``num_workers`` it measures three rates, in images per second: the
model alone (training steps on a batch already in memory), the project's training DataLoader
alone, reading the image files (``cache_images: false``, the case where workers matter), and
training with that loader (a step per batch: what an epoch runs at, decoding and training
sharing this machine's cores). Each over ``--batches`` batches after the first one (worker
start-up and first decode, shown apart), over more than one epoch where an epoch has fewer, or
fewer batches (at least 2) once ``--seconds`` have passed.
The settings take turns, ``--repeats`` rounds, so a busy machine slows them alike; figures are
medians with min-max. With the defaults: 146 s on the 2-core dev VM while other jobs kept it
busy (load average 7-10, 2026-12-03); less on a quiet machine.

The advice comes from the training column: for each batch size the fewest workers within 10% of
its best, then the smallest batch size within 10% of the best of those (more workers only take
cores and memory; a larger batch changes the optimization too: the LR goes with it, and the
accuracy needs a run to judge). When the loader alone is slower than the model alone, decoding is
the bottleneck: with the images cached in memory (``data.cache_images``, the default for small
data) the main process is often fast enough.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import interleaved, machine, spread, table
from project.data.pipeline import ImageData

NEAR_BEST = 0.9  # a setting within 10% of the fastest counts as fast enough (noise is ~5%)


def network(model: str, num_classes: int) -> torch.nn.Module:
    if model == "resnet18":
        from torchvision.models import resnet18

        return resnet18(num_classes=num_classes)
    from project.models.cnn import SmallCNN

    return SmallCNN(num_classes)


def model_rate(model: str, num_classes: int, batch_size: int, image_size: int, limit) -> float:
    """Images per second of training steps (forward, loss, backward, AdamW) on one batch in
    memory, over the batches and seconds of ``limit`` (after one untimed warm-up step)."""
    torch.manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size)
    labels = torch.randint(0, num_classes, (batch_size,))
    step = training_step(model, num_classes)
    step(images, labels)
    started, steps = time.perf_counter(), 0
    while not limit.reached(steps, time.perf_counter() - started):
        step(images, labels)
        steps += 1
    return steps * batch_size / (time.perf_counter() - started)


@dataclass(frozen=True)
class Limit:
    """How long one setting is timed: ``batches`` batches, or fewer (at least 2) once ``seconds``
    have passed, so a slow setting or a busy machine does not stretch the whole run."""

    batches: int
    seconds: float

    def reached(self, timed: int, elapsed: float) -> bool:
        return timed >= self.batches or (timed >= 2 and elapsed >= self.seconds)


def timed_batches(options: dict, limit: Limit, step=None) -> tuple[float, float]:
    """(images per second after the first batch, seconds to the first batch) of the training
    DataLoader with these ImageData options; ``step(images, labels)`` runs on every batch (a
    training step), or nothing does (the loader alone)."""
    data = ImageData(**options)
    data.setup("fit")
    started = time.perf_counter()
    loader = data.train_dataloader()
    iterator = iter(loader)
    images, labels = next(iterator)  # worker start-up and the first decode: timed apart
    first = time.perf_counter() - started
    if step is not None:
        step(images, labels)  # a fresh network's first step is slow (allocations): not timed
    started, seen, timed = time.perf_counter(), 0, 0
    while not limit.reached(timed, time.perf_counter() - started):
        for images, labels in iterator:  # over epochs when one is shorter (workers persist)
            if step is not None:
                step(images, labels)
            seen, timed = seen + len(images), timed + 1
            if limit.reached(timed, time.perf_counter() - started):
                break
        else:
            iterator = iter(loader)
    seconds = time.perf_counter() - started
    with contextlib.suppress(AttributeError):
        iterator._shutdown_workers()  # no idle workers left between the settings
    return seen / seconds, first


def training_step(model: str, num_classes: int):
    """A training step of a fresh network (forward, loss, backward, AdamW) on a batch."""
    torch.manual_seed(0)
    net = network(model, num_classes).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        optimizer.step()

    return step


def fewest_near_best(rates: dict, keys) -> object:
    """The smallest key (batch size, worker count) whose median rate is within 10% of the best."""
    best = max(statistics.median(rates[key]) for key in keys)
    return min(key for key in keys if statistics.median(rates[key]) >= NEAR_BEST * best)


def advise(training: dict, batch_sizes: list[int], workers: list[int]) -> tuple[int, int]:
    """(batch size, workers) from the training rates with the loader: per batch size the fewest
    workers near its best, then the smallest batch size near the best of those."""
    chosen = {b: fewest_near_best(training, [(b, w) for w in workers]) for b in batch_sizes}
    best_rates = {b: training[chosen[b]] for b in batch_sizes}
    batch = fewest_near_best(best_rates, batch_sizes)
    return chosen[batch]


def main(args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loader_settings",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--root", help="image folder (class sub-folders); default: the digits")
    parser.add_argument("--image-size", type=int, default=16, help="the config's data.image_size")
    parser.add_argument("--model", choices=["cnn", "resnet18"], default="cnn")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batches", type=int, default=20, help="batches timed per setting, ...")
    parser.add_argument("--seconds", type=float, default=1.0, help="... or fewer after this long")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every setting")
    options = parser.parse_args(args)
    if options.root and not Path(options.root).is_dir():
        parser.error(f"--root {options.root}: no such folder")
    if min(options.workers) < 0 or min(options.batch_sizes) < 1 or options.batches < 2:
        parser.error("--workers must be >= 0, --batch-sizes >= 1 and --batches >= 2")
    limit = Limit(options.batches, options.seconds)

    base = {"root": options.root, "image_size": options.image_size, "augmentation": "none",
            "cache_images": False, "pin_memory": torch.cuda.is_available()}  # fmt: skip
    data = ImageData(**base)
    data.prepare_data()  # writes the bundled digits once, when no --root is given
    data.setup("fit")
    train_images = sum(data.class_counts("train"))
    if train_images < 2 * max(options.batch_sizes):  # a first batch, and one to time
        parser.error(
            f"--batch-sizes {max(options.batch_sizes)}: the training split has {train_images} "
            "images, fewer than two batches; give smaller batch sizes"
        )
    # Measured once here, not again by every setting's ImageData (it decodes the training set).
    base["mean"], base["std"] = data.normalization()
    print(f"machine: {machine()}")
    print(f"data: {data.root}, {len(data.class_names)} classes, image_size {options.image_size}, "
          f"files decoded by the loader (cache_images: false); model: {options.model}")  # fmt: skip

    model = {b: (lambda b=b: model_rate(options.model, data.num_classes, b, options.image_size,
                                         limit))
             for b in options.batch_sizes}  # fmt: skip
    settings = [(b, w) for b in options.batch_sizes for w in options.workers]

    def measure(batch: int, workers: int, train: bool):
        step = training_step(options.model, data.num_classes) if train else None
        return timed_batches({**base, "batch_size": batch, "num_workers": workers},
                             limit, step)  # fmt: skip

    # Every setting measured twice: the loader alone, and training with it (a step per batch).
    runs = interleaved(
        {**{("model", b): f for b, f in model.items()},
         **{(kind, b, w): (lambda b=b, w=w, t=kind == "train": measure(b, w, t))
            for b, w in settings for kind in ("loader", "train")}},
        options.repeats,
    )  # fmt: skip
    model_rates = {b: runs[("model", b)] for b in options.batch_sizes}
    loader = {(b, w): [r for r, _ in runs[("loader", b, w)]] for b, w in settings}
    first = {(b, w): [f for _, f in runs[("loader", b, w)]] for b, w in settings}
    training = {(b, w): [r for r, _ in runs[("train", b, w)]] for b, w in settings}

    rows = [[str(b), str(w), spread(model_rates[b], "", 0), spread(loader[b, w], "", 0),
             spread(training[b, w], "", 0), spread(first[b, w], " s", 2)]
            for b, w in settings]  # fmt: skip
    table(
        "Images per second by batch size and num_workers: the model alone (batch in memory), the "
        "loader alone (image files), training with that loader",
        ["batch", "workers", "model alone", "loader alone", "training", "first batch"],
        rows,
    )
    batch, workers = advise(training, options.batch_sizes, options.workers)
    print(f"\nadvice for this machine ({os.cpu_count()} cores), these images and this model:")
    print(
        f"- num_workers={workers}, batch_size={batch}: "
        f"{statistics.median(training[batch, workers]):.0f} images/s of training. The rule: "
        f"the fewest workers, then the smallest batch size, that still train within "
        f"{1 - NEAR_BEST:.0%} of the fastest setting measured "
        f"({max(statistics.median(v) for v in training.values()):.0f} images/s)"
        f"{'; each smaller batch fell short of that' if batch > min(options.batch_sizes) else ''}"
        ". More workers take cores and memory; a larger batch changes the optimization too: "
        "scale the LR with it and judge the accuracy with a run"
    )
    bottleneck = statistics.median(loader[batch, workers]) < statistics.median(model_rates[batch])
    if bottleneck:
        print(
            "- the loader alone is slower than the model alone here: decoding is the bottleneck; "
            "cache the decoded images (data.cache_images: true) or use more cores"
        )
    return {"batch_size": batch, "num_workers": workers, "training": training,
            "loader": loader, "model": model_rates}  # fmt: skip


if __name__ == "__main__":
    main()
