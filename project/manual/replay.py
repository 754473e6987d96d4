"""Resuming inside an epoch: fetch the batches already trained again, train from the next one.

When a signal stops the manual loop mid-epoch (project/manual/signals.py), its last.ckpt records
``MidEpoch``: how many batches of the epoch were trained, the epoch's running sums, and the random
state at the epoch's start. ``--resume`` restores that random state, so the DataLoader shuffles
the same order again; ``batches()`` fetches (and so augments) the trained batches without training
on them, then restores the random state of the stop for the batch augmentation and dropout still to
come. The result equals an uninterrupted run bit for bit (tests/test_reliability.py).

Streamed shards (``--data.shards``) are not fetched again: the checkpoint also holds LitData's
``StreamingDataLoader.state_dict()`` (``loader_state``), the loader continues from it (LitData's
own resumable state), and the random state of the stop is restored at once.

Lightning resumes mid-epoch differently (its fit loop state and the sampler's position); for the
shapes of data here that is not bit-exact, which is why the manual loop does it this way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from project.runs.checkpoints import restore_rng_states


@dataclass
class MidEpoch:
    batches_done: int  # batches of this epoch trained before the stop
    train_sums: tuple[float, int, int]  # (loss sum, correct, seen) over those batches
    epoch_start_rng: dict  # the random state when the epoch began (replays its data order)
    stop_rng: dict | None = None  # the random state at the stop (the checkpoint's rng_states)
    loader_state: dict | None = None  # a stream's StreamingDataLoader.state_dict() (data.shards)

    def to_checkpoint(self) -> dict:
        saved = {
            "batches_done": self.batches_done,
            "train_sums": self.train_sums,
            "epoch_start_rng": self.epoch_start_rng,
        }
        if self.loader_state is not None:
            saved["loader_state"] = self.loader_state
        return saved

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> MidEpoch | None:
        """Where the checkpoint's run stopped inside an epoch; None after a whole epoch."""
        saved = checkpoint.get("mid_epoch")
        return cls(**saved, stop_rng=checkpoint["rng_states"]) if saved else None


def batches(
    loader: Iterable,
    skip: int = 0,
    stop_rng: dict | None = None,
    loader_state: dict | None = None,
    limit: int | None = None,
) -> Iterator[tuple[int, object]]:
    """``enumerate(loader)`` without its first ``skip`` batches, which are still fetched.

    After the last skipped batch the random state ``stop_rng`` (saved at the stop) takes over.
    With ``loader_state`` (a stream's) the loader itself starts after them: nothing is fetched
    twice, and the batches are numbered from ``skip``. When the stop came after the epoch's last
    batch (``skip`` reaches ``limit``, the batches the epoch trains) nothing is fetched at all: a
    stream's loader, restored at its end, would give one more batch, read and thrown away.
    """
    if limit is not None and skip >= limit:
        if stop_rng is not None:
            restore_rng_states(stop_rng)
        return
    if loader_state is not None:
        loader.load_state_dict(loader_state)  # LitData: the epoch and position of the stop
        if stop_rng is not None:
            restore_rng_states(stop_rng)
        yield from enumerate(loader, start=skip)
        return
    for index, batch in enumerate(loader):
        if index < skip:
            if index == skip - 1 and stop_rng is not None:
                restore_rng_states(stop_rng)
            continue
        yield index, batch
