"""What tests/test_multinode.py needs to see inside each training process of a multi-node run.

Each process writes ``$PROBE_DIR/rank<R>.json`` (its rank, node, world size, and per epoch the
dataset indices its sampler gave it and the images its training batches held) and
``$PROBE_DIR/rank<R>.pt`` (its network's weights at the end of fit). Training itself is untouched.

Lightning: a callback on the command line
    --trainer.callbacks+=tests.multinode_probe.RankProbe
The manual loop: this module as torchrun's program, with the manual loop's arguments
    torchrun ... -m tests.multinode_probe fit --config ...
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DistributedSampler


def write(rank: int, record: dict, weights: dict) -> None:
    folder = Path(os.environ["PROBE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{rank}.json").write_text(json.dumps(record))
    torch.save({k: v.detach().cpu() for k, v in weights.items()}, folder / f"rank{rank}.pt")


class RankProbe(Callback):
    """Lightning: the sampler's indices and the batches' sizes per epoch, the final weights."""

    def __init__(self):
        self.indices: list[list[int]] = []
        self.images: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # Lightning has called sampler.set_epoch(epoch) by now; iterating it draws nothing from
        # the global random state (DistributedSampler seeds its own generator with seed + epoch).
        self.indices.append(list(trainer.train_dataloader.sampler))
        self.images.append(0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.images[-1] += len(batch[1])

    def on_fit_end(self, trainer, pl_module) -> None:
        record = {
            "global_rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "local_rank": trainer.local_rank,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "sampler": type(trainer.train_dataloader.sampler).__name__,
            "indices": self.indices,
            "images": self.images,
        }
        write(trainer.global_rank, record, pl_module.network.state_dict())


class RecordingSampler(DistributedSampler):
    """DistributedSampler that also keeps the indices it hands out (training loader only)."""

    drawn: list[list[int]] = []

    def __iter__(self):
        indices = list(super().__iter__())
        if self.shuffle:  # the training loader; validation is not shuffled
            RecordingSampler.drawn.append(indices)
        return iter(indices)


def run_manual(args: list[str]) -> None:
    """The manual loop's ``fit``, recording what each process trained on."""
    import project.manual.distributed as distributed
    from project.manual.cli import run

    distributed.DistributedSampler = RecordingSampler  # shard() builds its sampler from this
    networks = []
    real_wrap = distributed.wrap

    def wrap(network, device):
        networks.append(network)
        return real_wrap(network, device)

    distributed.wrap = wrap
    result = run(args)
    rank = int(os.environ["RANK"])
    steps = len(result.history.step_losses) // max(len(result.history.epochs), 1)
    record = {
        "global_rank": rank,
        "node_rank": int(os.environ["GROUP_RANK"]),
        "local_rank": int(os.environ["LOCAL_RANK"]),
        "world_size": int(os.environ["WORLD_SIZE"]),
        "indices": RecordingSampler.drawn,
        "steps_per_epoch": steps,
    }
    write(rank, record, networks[-1].state_dict())


if __name__ == "__main__":
    run_manual(sys.argv[1:])
