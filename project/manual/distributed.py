"""Several processes for the manual loop: what Lightning's DDP strategy does, in a few functions.

    torchrun --nproc_per_node=2 -m project.manual fit --config configs/cnn.yaml   # 2 CPU processes
    torchrun --nproc_per_node=4 -m project.manual fit --config ...                # 4 GPUs

torchrun starts the processes and sets RANK, LOCAL_RANK and WORLD_SIZE. Each process trains a
replica of the model on its share of every epoch (DistributedSampler); DistributedDataParallel
averages the gradients during backward; metrics are summed over the processes; only process 0
(rank 0) writes logs and checkpoints. Without torchrun (WORLD_SIZE unset) every function here is a
no-op and the loop runs as one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset

from project.data.streaming import set_stream_epoch


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def start(device: torch.device) -> torch.device:
    """Join the process group; this process's device (its own GPU, or the CPU)."""
    if world_size() == 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    # nccl between GPUs, gloo between CPU processes (Lightning picks the same).
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(loader: DataLoader, shuffle: bool, seed: int = 0) -> DataLoader:
    """The same DataLoader over this process's share of the data (Lightning: it does this for
    you, use_distributed_sampler=True). Call ``loader.sampler.set_epoch(epoch)`` every epoch."""
    if not dist.is_initialized() or isinstance(loader.dataset, IterableDataset):
        return loader  # a stream (data.shards): LitData gives each process its share itself
    sampler = loader.sampler  # already per process: data.sampler weighted (data/sampling.py)
    if not isinstance(sampler, DistributedSampler):
        sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        drop_last=loader.drop_last,
        num_workers=loader.num_workers,
        persistent_workers=loader.persistent_workers,
        pin_memory=loader.pin_memory,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """A new shuffle every epoch, the same on every process (Lightning does this for you)."""
    set_stream_epoch(loader, epoch)  # data.shards: LitData's own epoch count
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def wrap(network: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``network`` (it averages gradients across processes).

    DDP registers the parameters that require gradients *now*: after freezing or unfreezing a
    backbone, wrap again, or the newly trainable parameters are never synchronized.
    """
    if not dist.is_initialized():
        return network
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(network, device_ids=device_ids)


def sum_over_processes(*values: float | torch.Tensor) -> list:
    """Each value summed over all processes (counts, loss sums, confusion matrices)."""
    if not dist.is_initialized():
        return list(values)
    # nccl reduces GPU tensors only; gloo CPU tensors.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    summed = []
    for value in values:
        tensor = torch.as_tensor(value, dtype=torch.float64).to(device).clone()
        dist.all_reduce(tensor)
        summed.append(tensor.cpu() if isinstance(value, torch.Tensor) else tensor.item())
    return summed


def any_process(flag: bool) -> bool:
    """True if ``flag`` is true in any process (so that all stop at the same step)."""
    if not dist.is_initialized():
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


class NoWriter:
    """Stands in for the SummaryWriter on ranks other than 0: every call does nothing
    (Lightning: its loggers are rank_zero_only)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def broadcast_buffers(network: nn.Module) -> None:
    """Give every process process 0's buffers (BatchNorm running statistics).

    DDP broadcasts them at the start of each forward it runs, so after the last training batch
    every process still holds the statistics of its own batch. Lightning validates through the
    DDP wrapper, whose forward broadcasts process 0's first; a loop that validates with the plain
    network calls this before validating, so that every process evaluates the same model.
    """
    if not dist.is_initialized():
        return
    for buffer in network.buffers():
        dist.broadcast(buffer.data, src=0)
