"""Training from LitData shards: the folder's splits and classes, streamed (``--data.shards DIR``).

    python -m project shards --config configs/cnn.yaml --output data/digits-shards   # shards.py
    python -m project fit --config configs/cnn.yaml --data.shards data/digits-shards
    python -m project.manual fit --config configs/cnn.yaml --data.shards data/digits-shards

``ImageData`` (project/data/pipeline.py) reads a shards folder through ``ShardSource``: the class
names and the split record from ``shards.json``, the split itself from ``splits.csv`` (one row per
stored image, in the order the images are stored), and the images from LitData's
``StreamingDataset`` / ``StreamingDataLoader``. LitData shards every epoch across DDP processes
and DataLoader workers itself (no DistributedSampler), shuffles with a seed and the epoch number,
and its loader's ``state_dict()`` says how far an epoch got, so a checkpoint resumes mid-epoch.
``DIR`` may be a URL LitData reads (``s3://``, ``gs://``, ...; documented, not tested here): the
chunks are then downloaded into ``--data.cache_dir``.

Plain PyTorch and LitData: no Lightning is imported (LitData itself imports none). Without LitData
installed every use is one line: ``pip install -e '.[streaming]'``.

``PROJECT_SHARDS_TRACE=FOLDER``: every process (and worker) appends ``epoch<TAB>path`` of each
training image it reads to a file of its own in FOLDER; the tests count them (exactly once per
epoch across DDP processes, the same images after a resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from project.core.errors import InputError
from project.data.images import decode_image_bytes
from project.data.split_file import read_split_file

try:  # LitData is the [streaming] extra: this module imports without it, and says so when used
    from litdata import StreamingDataLoader, StreamingDataset
except ImportError:  # pragma: no cover - exercised by tests/test_streaming.py with a blocked import
    StreamingDataLoader = StreamingDataset = None

INSTALL_HINT = "pip install -e '.[streaming]'"
META_FILE = "shards.json"  # class names, split record, what wrote them
SPLIT_FILE = "splits.csv"  # split, path, label: one row per stored image, in stored order
TRACE_VARIABLE = "PROJECT_SHARDS_TRACE"
FORMAT = 1  # shards.json "format": raise it when the item layout changes


class MissingLitData(InputError):
    """LitData is not installed: one line, exit status 2."""


def require_litdata() -> None:
    if StreamingDataset is None:
        raise MissingLitData(f"streaming shards needs LitData: {INSTALL_HINT}")


def is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def fetch(location: str, name: str, cache_dir: str | None) -> Path:
    """``location/name`` as a local file: itself for a local folder, else downloaded by LitData's
    own downloader (the same credentials and options it uses for the chunks)."""
    if not is_remote(location):
        path = Path(location.removeprefix("file://")) / name
        if not path.is_file():
            raise InputError(
                f"data.shards {location}: no {name} (write shards with python -m project shards)"
            )
        return path
    from litdata.streaming.downloader import get_downloader

    local = Path(cache_dir or Path.home() / ".cache" / "project-shards") / "meta"
    local = local / location.replace("://", "/").strip("/")
    local.mkdir(parents=True, exist_ok=True)
    target = local / name
    try:
        get_downloader(location, str(local), []).download_file(f"{location}/{name}", str(target))
    except Exception as error:  # noqa: BLE001 - any backend's failure: one line naming the URL
        raise InputError(f"data.shards {location}: cannot read {name} ({error})") from error
    return target


class ShardSource:
    """What a shards folder holds: class names, the split, and a StreamingDataset per split."""

    def __init__(self, location: str, cache_dir: str | None = None):
        require_litdata()
        self.location = location.rstrip("/")
        self.cache_dir = cache_dir
        meta_path = fetch(self.location, META_FILE, cache_dir)
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"data.shards {location}: {META_FILE} unreadable ({error})") from None
        if self.meta.get("format") != FORMAT:
            raise InputError(
                f"data.shards {location}: written in format {self.meta.get('format')}, this "
                f"version reads format {FORMAT}: write the shards again"
            )
        self.class_names: list[str] = list(self.meta["classes"])
        self.rows = read_split_file(fetch(self.location, SPLIT_FILE, cache_dir))
        index = {name: i for i, name in enumerate(self.class_names)}
        self.samples = {
            split: [(Path(path), index[name]) for s, path, name in self.rows if s == split]
            for split in self.meta["splits"]
        }

    def split_dir(self, split: str) -> str:
        return f"{self.location}/{split}"

    def dataset(
        self,
        split: str,
        transform: Callable | None = None,
        shuffle: bool = False,
        seed: int = 42,
    ) -> ShardImageDataset:
        targets = [label for _, label in self.samples[split]]
        cache = None if self.cache_dir is None else str(Path(self.cache_dir) / split)
        return ShardImageDataset(
            self.split_dir(split), split, targets, transform, shuffle, seed, cache
        )


class ShardImageDataset(StreamingDataset or torch.utils.data.IterableDataset):
    """LitData's StreamingDataset of one split, serving ``(transform(image), label)`` as
    ``ImageDataset`` does: the stored bytes are decoded by the same ``decode_image_bytes``."""

    def __init__(
        self,
        input_dir: str,
        split: str,
        targets: list[int],
        transform: Callable | None = None,
        shuffle: bool = False,
        seed: int = 42,
        cache_dir: str | None = None,
    ):
        require_litdata()
        # drop_last: training under several processes drops the few images that would give
        # one process more batches than another (DDP steps in lockstep; LitData's default);
        # evaluation keeps every image (no process waits on another while evaluating).
        # item_shuffle_window "full": items are shuffled across a whole chunk, not in blocks of
        # 256 (the default, for decoding in blocks), so a batch mixes classes in small datasets.
        super().__init__(
            input_dir=input_dir,
            cache_dir=cache_dir,
            shuffle=shuffle,
            seed=seed,
            drop_last=None if shuffle else False,
            item_shuffle_window="full",
        )
        self._arguments = (input_dir, split, targets)
        self._options = {"shuffle": shuffle, "seed": seed, "cache_dir": cache_dir}
        self.split = split
        self._targets = targets
        self.image_transform = transform  # not `transform`: StreamingDataset's own, on the raw item
        self._trace = None

    @property
    def targets(self) -> list[int]:
        """Every label of the split in stored order (the validation figures pick examples)."""
        return self._targets

    def read(self, index) -> torch.Tensor:
        """The untransformed uint8 image of item ``index`` (an int: random access)."""
        return self._decode(super().__getitem__(index))[0]

    def _decode(self, item: dict) -> tuple[torch.Tensor, int]:
        name = f"{self.input_dir.url or self.input_dir.path}: {item['path']}"
        return decode_image_bytes(item["image"], name), int(item["label"])

    def __getitem__(self, index) -> tuple[torch.Tensor, int]:
        item = super().__getitem__(index)
        image, label = self._decode(item)
        self._record(item["path"])
        if self.image_transform is not None:
            image = self.image_transform(image)
        return image, label

    def with_transform(self, transform: Callable | None, transform_batches: bool = False):
        """The same split with another transform (``transform_batches``: folder cache only)."""
        return ShardImageDataset(*self._arguments, transform, **self._options)

    def _record(self, path: str) -> None:
        """PROJECT_SHARDS_TRACE: append this training image to this process's trace file."""
        folder = os.environ.get(TRACE_VARIABLE)
        if not folder or self.split != "train":
            return
        if self._trace is None or self._trace[0] != os.getpid():  # a worker: a file of its own
            Path(folder).mkdir(parents=True, exist_ok=True)
            file = open(Path(folder) / f"{self.split}-{os.getpid()}.txt", "a")  # noqa: SIM115
            self._trace = (os.getpid(), file)
        self._trace[1].write(f"{self.current_epoch}\t{path}\n")
        self._trace[1].flush()  # a kill -9 keeps every line written before it

    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {**state, "_trace": None}  # an open file is not sent to a worker


class ImageStreamLoader(StreamingDataLoader or torch.utils.data.DataLoader):
    """LitData's StreamingDataLoader whose restored position applies to one epoch only.

    ``load_state_dict`` sets LitData's ``restore`` flag, cleared when an epoch's iteration runs
    to its end. Lightning stops iterating after the epoch's counted batches without asking for
    the next, so the flag stayed set and the following epoch was "restored" again: empty (LitData
    0.2.76). Here a restore is used by the first ``iter()`` after ``load_state_dict`` only.
    """

    def load_state_dict(self, obj: dict) -> None:
        super().load_state_dict(obj)
        self._restore_pending = True

    def __iter__(self):
        if self.restore and not getattr(self, "_restore_pending", False):
            self.restore = False  # an epoch after the restored one: a new epoch
        self._restore_pending = False
        yield from super().__iter__()


def stream_loader(
    dataset: ShardImageDataset,
    batch_size: int,
    train: bool,
    num_workers: int,
    pin_memory: bool,
) -> StreamingDataLoader:
    """LitData's DataLoader: it shards by process and worker, and has state_dict()."""
    require_litdata()
    # A last batch of 1 image breaks BatchNorm in training; evaluation keeps every image.
    loader = ImageStreamLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        drop_last=train and len(dataset.targets) > batch_size,
        pin_memory=pin_memory,
        # Each iter() draws the workers' base seed from this generator, not from torch's global
        # one: a run resumed mid-epoch starts an iterator the interrupted run had started before
        # its checkpoint, and would otherwise shift every later random draw (dropout, the batch
        # augmentation) by one.
        generator=torch.Generator().manual_seed(dataset.seed),
    )
    if len(loader) == 0:  # LitData hands out whole batches: some process got none
        processes = dataset.distributed_env.world_size
        raise InputError(
            f"data.shards {dataset.split}: {len(dataset.targets)} images give one of "
            f"{processes} processes no batch of {batch_size} (LitData shares a split out in "
            "whole batches); lower data.batch_size"
        )
    return loader


def loader_state(loader) -> dict | None:
    """How far the loader's epoch got (LitData's StreamingDataLoader); None for other loaders."""
    return loader.state_dict() if is_stream(loader) else None


def is_stream(loader) -> bool:
    return StreamingDataLoader is not None and isinstance(loader, StreamingDataLoader)


def set_stream_epoch(loader, epoch: int) -> None:
    """Epoch ``epoch`` (from 0) comes next: LitData shuffles by its own epoch count (from 1).
    Left alone after ``load_state_dict`` (``restore``): the restored epoch continues."""
    if is_stream(loader) and not loader.restore:
        loader.current_epoch = epoch
