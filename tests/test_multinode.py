"""Multi-node training simulated on one machine: two "nodes" of one process each, started the way a
cluster starts them, for Lightning (``num_nodes: 2`` and the cluster's environment variables) and
for the manual loop (two ``torchrun --nnodes 2 --node_rank N`` commands).

Both are real subprocesses on a tiny dataset of 64 training images (2 ranks x 2 batches of 16, so
no sampler padding and no dropped batch). Each run must leave one log folder, the same weights on
both ranks (and in last.ckpt), and every training image seen exactly once per epoch across ranks
(tests/multinode_probe.py records what each process trained on).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from project.runs.checkpoints import load_checkpoint, network_state

from .helpers import BOUND_SECONDS, CNN_CONFIG, REPO, kill_group, save_image, tail

PRESET = str(REPO / "configs" / "presets" / "multinode_cpu.yaml")
EPOCHS, BATCH, TRAIN_IMAGES = 2, 16, 64


def tiny_split_folders(root: Path) -> Path:
    """root/train/<class> (32 images each) and root/val/<class> (4 each), random 12x10 PNGs."""
    for split, per_class in (("train", TRAIN_IMAGES // 2), ("val", 4)):
        for label in ("a", "b"):
            for i in range(per_class):
                save_image(root / split / label / f"{i}.png", seed=hash((split, label, i)) % 2**32)
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_args(data: Path, logs: Path) -> list[str]:
    return [
        "--config", CNN_CONFIG, f"--data.root={data}", f"--data.batch_size={BATCH}",
        "--data.image_size=8", "--data.augmentation=none", "--data.num_workers=0",
        f"--trainer.logger.init_args.save_dir={logs}", f"--trainer.max_epochs={EPOCHS}",
        "--trainer.precision=32-true", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]  # fmt: skip


def run_nodes(commands: list[list[str]], envs: list[dict], logs: Path) -> None:
    """Start one process per node, wait for all to exit (each bounded); any failure kills all."""
    processes = []
    for node, (command, env) in enumerate(zip(commands, envs, strict=True)):
        log = open(logs / f"node{node}.log", "w")  # noqa: SIM115 - closed below
        processes.append((subprocess.Popen(command, cwd=REPO, env={**os.environ, **env},
                                           stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True), log))  # fmt: skip
    deadline = time.monotonic() + BOUND_SECONDS
    try:
        while any(process.poll() is None for process, _ in processes):
            failed = [p for p, _ in processes if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for process, log in processes:
            if process.poll() is None:
                kill_group(process)
            log.close()
    outputs = [(logs / f"node{n}.log").read_text() for n in range(len(processes))]
    for node, (process, _) in enumerate(processes):
        assert process.returncode == 0, f"node {node}: status {process.returncode}\n" + "\n".join(
            f"--- node {n}:\n{tail(text, 3000)}" for n, text in enumerate(outputs)
        )


def check_ranks(probe: Path, log_root: Path, checkpoint_folder_glob: str) -> list[dict]:
    """One log folder, equal weights (BatchNorm statistics included) on every rank and in
    last.ckpt, each training image once per epoch across ranks."""
    records = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["global_rank"] for r in records] == [0, 1]
    assert [r["node_rank"] for r in records] == [0, 1]
    assert all(r["world_size"] == 2 and r["local_rank"] == 0 for r in records)
    folders = [f for f in (log_root / "cnn").iterdir() if f.is_dir()]
    assert len(folders) == 1 and folders[0].match(checkpoint_folder_glob), folders
    weights = [torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    saved = network_state(load_checkpoint(folders[0] / "checkpoints" / "last.ckpt"), "last")
    for name, value in weights[0].items():
        assert torch.equal(value, saved[name]), f"{name} differs from last.ckpt"
        assert torch.equal(value, weights[1][name]), f"{name} differs between the ranks"
    for epoch in range(EPOCHS):
        shards = [r["indices"][epoch] for r in records]
        assert not set(shards[0]) & set(shards[1])  # disjoint halves ...
        assert sorted(shards[0] + shards[1]) == list(range(TRAIN_IMAGES))  # ... of every image
    assert records[0]["indices"][0] != records[0]["indices"][1]  # a new shuffle each epoch
    return records


@pytest.mark.slow
def test_lightning_two_nodes_from_the_cluster_environment(tmp_path):
    data, logs, probe = tiny_split_folders(tmp_path / "data"), tmp_path / "logs", tmp_path / "probe"
    logs.mkdir()
    command = [sys.executable, "-m", "project", "fit", *run_args(data, logs), "--config", PRESET,
               "--trainer.callbacks+=tests.multinode_probe.RankProbe"]  # fmt: skip
    port = str(free_port())
    envs = [
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2",
         "NODE_RANK": str(node), "LOCAL_RANK": "0", "PROBE_DIR": str(probe)}
        for node in (0, 1)
    ]  # fmt: skip
    run_nodes([command, command], envs, logs)
    records = check_ranks(probe, logs, "version_*")
    assert all(r["num_nodes"] == 2 and r["sampler"] == "DistributedSampler" for r in records)
    # The batches held exactly the sampler's share: 32 images per rank per epoch.
    assert all(r["images"] == [TRAIN_IMAGES // 2] * EPOCHS for r in records)


@pytest.mark.slow
def test_manual_loop_two_nodes_under_torchrun(tmp_path):
    data, logs, probe = tiny_split_folders(tmp_path / "data"), tmp_path / "logs", tmp_path / "probe"
    logs.mkdir()
    port = str(free_port())
    commands = [
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}",
         "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}",
         "-m", "tests.multinode_probe", "fit", *run_args(data, logs)]
        for node in (0, 1)
    ]  # fmt: skip
    run_nodes(commands, [{"PROBE_DIR": str(probe)}] * 2, logs)
    # BatchNorm statistics too: the loop gives every process process 0's after each epoch
    # (distributed.broadcast_buffers); without it each kept those of its own last batch.
    records = check_ranks(probe, logs, "manual_version_*")
    assert all(r["steps_per_epoch"] == TRAIN_IMAGES // 2 // BATCH for r in records)
