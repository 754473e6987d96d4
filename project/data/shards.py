"""``python -m project shards``: write the configured images as LitData shards, split by split.

    python -m project shards --config configs/cnn.yaml --output data/digits-shards
    python -m project shards --config configs/cnn.yaml --data.root path/to/images \\
        --output path/to/shards --chunk_mb 64 --workers 2
    python -m project fit --config configs/cnn.yaml --data.shards data/digits-shards

Every split of the config's data (class folders or CSV, explicit train/val/test folders, the
recorded ``data.split_file`` when given) goes through ``litdata.optimize`` into
``OUTPUT/<split>/`` (chunks of about ``--chunk_mb`` MB plus LitData's index.json), one item per
image: the file's bytes as stored (no re-encoding and no resize: the transforms stay in the
training pipeline), its label and its path relative to the data root, in an order shuffled once
(seeded by ``data.split_seed``): a folder is sorted by class, and LitData shuffles the order of
the chunks and of the items inside each chunk, never across chunks. Beside them:
``shards.json`` (the class names, the split record a checkpoint stores, the counts) and
``splits.csv`` (the split file a run writes), so a sharded dataset trains to the same classes and
split as its folder (project/data/streaming.py reads it back).

Each image is decoded once while it is written (the decode training does): an unreadable one
stops the command with the data check's one line and exit status 2, and nothing is left behind;
everything is written into a temporary folder beside OUTPUT and renamed to OUTPUT at the end.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionConfigFile, ArgumentParser

from project.core.errors import InputError, exit_on_error
from project.data import streaming
from project.data.images import ImageLoadError, decode_image_bytes
from project.data.pipeline import SPLITS, ImageData
from project.data.split_file import write_split_file


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m project shards", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile, help="a training YAML (its data:)")
    parser.add_argument("--output", type=str, required=True, help="the shards folder to write")
    parser.add_argument("--chunk_mb", type=float, default=64.0, help="target chunk size, in MB")
    parser.add_argument("--workers", type=int, default=1, help="LitData writer processes")
    # The rest of a training config is accepted and not used: only data: is read.
    for section in ("model", "trainer", "seed_everything", "optimizer", "lr_scheduler"):
        parser.add_argument(f"--{section}", type=Any, default=None)
    parser.add_class_arguments(ImageData, "data")
    return parser


def shard_item(failures: str, sample: tuple[str, int, str]) -> dict:
    """One stored item (in a LitData writer process). Decoded once, to refuse what training
    could not read. A failure is not raised here: LitData would stop with its own traceback and
    leave the writer's helper processes behind. Its line goes to ``failures``, the remaining
    items become empty placeholders (nothing more is read), and the command stops after it."""
    path, label, relative = sample
    if os.path.exists(failures):
        return {"image": b"", "label": -1, "path": ""}
    with open(path, "rb") as file:
        data = file.read()
    try:
        decode_image_bytes(data, path)
    except ImageLoadError as error:
        Path(failures).write_text(str(error))
        return {"image": b"", "label": -1, "path": ""}
    return {"image": data, "label": label, "path": relative}


def write_shards(data: ImageData, output: Path, chunk_mb: float = 64.0, workers: int = 1) -> Path:
    """Write ``data``'s splits as shards into ``output`` (which must not exist yet)."""
    streaming.require_litdata()
    import litdata

    if data.hparams.shards is not None:
        raise InputError("shards: the source is already shards (data.shards); give a folder")
    output = Path(output)
    if output.exists():
        raise InputError(f"shards: {output} exists; delete it or choose another --output")
    rows = data.split_rows()  # (split, path relative to the root, class name), in split order
    generator = torch.Generator().manual_seed(data.hparams.split_seed)
    stored_rows = []  # splits.csv: the rows in the order the items are stored
    temporary = output.parent / f".{output.name}.tmp-{os.getpid()}"
    failures = temporary / "failed.txt"
    try:
        temporary.mkdir(parents=True)
        for split in SPLITS:
            samples = data.samples(split)
            if not samples:
                continue
            split_rows = [row for row in rows if row[0] == split]
            order = torch.randperm(len(samples), generator=generator).tolist()
            stored_rows += [split_rows[i] for i in order]
            inputs = [(str(samples[i][0]), samples[i][1], split_rows[i][1]) for i in order]
            print(f"shards: {split}: {len(inputs)} images -> {output / split}", flush=True)
            try:
                litdata.optimize(
                    fn=functools.partial(shard_item, str(failures)),
                    inputs=inputs,
                    output_dir=str(temporary / split),
                    chunk_bytes=int(chunk_mb * 1_000_000),
                    num_workers=max(1, workers),
                    keep_data_ordered=True,  # item i of a split is row i of splits.csv
                    start_method="fork" if sys.platform == "linux" else None,
                )
            except Exception as error:
                raise InputError(f"shards: LitData could not write {split} ({error})") from error
            if failures.is_file():  # the image's own line (the data check's message)
                raise ImageLoadError(failures.read_text())
        write_split_file(temporary, stored_rows)
        meta = {
            "format": streaming.FORMAT,
            "classes": data.class_names,
            "splits": [s for s in SPLITS if data.samples(s)],
            "counts": {s: len(data.samples(s)) for s in SPLITS if data.samples(s)},
            "data_split": data.split_record(),
            "source": str(data.hparams.csv_file or data.root),
            "litdata": litdata.__version__,
        }
        (temporary / streaming.META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        temporary.rename(output)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return output


def main(args: list[str] | None = None) -> int:
    config = build_parser().parse_args(args)
    with exit_on_error():
        data = ImageData(**config.data.as_dict())
        output = write_shards(data, Path(config.output), config.chunk_mb, config.workers)
        counts = ", ".join(f"{s} {n}" for s, n in json.loads(
            (output / streaming.META_FILE).read_text())["counts"].items())  # fmt: skip
        print(f"shards written: {output} ({counts}); train with --data.shards {output}")
    return 0
