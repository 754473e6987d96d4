"""ImageData: the one place that turns image files into train/val/test/predict DataLoaders.

Plain PyTorch, no Lightning import: the manual loop (project/manual/) uses it directly, and the
Lightning loop through ``ImageDataModule`` (project/lit/datamodule.py), a thin adapter that adds
Lightning's hooks. Both get the same splits, transforms, cache and loaders. Sources:

- ``root`` with class folders ``root/<class>/<image>``: split by ``val_fraction``/``test_fraction``
  (seeded, stratified), unless ``root`` has explicit ``train/``, ``val/`` (and ``test/``) folders;
- ``csv_file`` of ``path,label`` rows, paths relative to ``root`` (default: the CSV's folder);
- ``root: null`` (the default): the bundled digits, written to data/digits on first use.

    python -m project fit --config configs/cnn.yaml --data.root path/to/my/images
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from project.data.cache import CacheOption, CachePlan, plan_cache
from project.data.datasets import (
    DataError,
    ImageDataset,
    Sample,
    UnlabeledImageDataset,
    drop_unreadable,
    keep_classes,
    scan_class_folders,
    scan_csv,
)
from project.data.digits import DIGITS_ROOT, write_digits
from project.data.sampling import ClassBalancedSampler, class_counts
from project.data.split_file import apply_split_file, split_hash, split_rows, write_split_file
from project.data.splits import stratified_split
from project.data.transforms import (
    Augmentation,
    BatchRandomAffine,
    channel_mean_std,
    eval_transform,
    only_square_resize,
    resize,
    train_transform,
)

SPLITS = ("train", "val", "test")
# Normalization statistics are estimated from at most this many training images.
MAX_IMAGES_FOR_STATS = 2000
# The validation images every checkpoint stores for export's check (ImageData.inference_sample).
SAMPLE_IMAGES = 32
SAMPLE_BYTES = 2_000_000


def is_main_process() -> bool:
    """Process 0 of a run (the launcher's RANK / LOCAL_RANK), which prints the one-line notes."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


class Options(dict):
    """The DataModule's arguments, read as ``data.hparams.batch_size`` (as Lightning's are)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def default_num_workers() -> int:
    """One core stays with the training loop; the rest (at most 4) decode images."""
    return min(4, max(0, (os.cpu_count() or 1) - 1))


class ImageData:
    def __init__(
        self,
        root: str | None = None,
        csv_file: str | None = None,
        predict_root: str | None = None,
        classes: list[str] | None = None,
        image_size: int = 16,
        augmentation: Augmentation = "digits",
        mean: list[float] | None = None,
        std: list[float] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 42,
        batch_size: int = 64,
        num_workers: int | None = None,
        cache_images: CacheOption = "auto",
        preprocessing: str | None = None,
        eval_crop: bool | None = None,
        pin_memory: bool | None = None,
        skip_invalid: bool = False,
        allow_paths_outside_root: bool = False,
        sampler: Literal["shuffle", "weighted"] = "shuffle",
        split_file: str | None = None,
        shards: str | None = None,
        cache_dir: str | None = None,
    ):
        """
        Args:
            root: image root folder; null for the bundled digits (data/digits).
            csv_file: optional ``path,label`` CSV; its paths are relative to ``root``.
            predict_root: folder of unlabelled images for ``predict``.
            classes: train on these classes only (by name, in this order); null for all.
            image_size: images are resized to image_size x image_size.
            augmentation: training augmentation preset: digits, natural or none.
            mean: per-channel normalization mean; null to measure it on the training images.
            std: per-channel normalization std; null to measure it on the training images.
            val_fraction: share of each class held out for validation (when no val/ folder).
            test_fraction: share of each class held out for testing (when no test/ folder).
            split_seed: seed of the train/val/test split (independent of the training seed).
            batch_size: images per batch.
            num_workers: DataLoader worker processes; null for min(4, CPU cores - 1).
            cache_images: decode every image once into memory, at about twice image_size, or
                at image_size x image_size when every transform begins with that resize
                (project/data/cache.py). auto: only when the estimate fits the memory budget
                (a quarter of the available memory); true: an error when it does not; false: never.
            preprocessing: torchvision weights whose own preprocessing to use, e.g.
                ResNet18_Weights.IMAGENET1K_V1 (``weights.transforms()``: mean, std and the
                resize/crop ratio they were trained with); data.mean and data.std, when set, win.
            eval_crop: evaluate on a center crop after resizing the shorter side (keeps the
                aspect ratio) instead of squashing to a square; null: for augmentation natural.
            pin_memory: page-locked batches for faster GPU copies; null: when CUDA is available.
            skip_invalid: decode every file once when the data is scanned and leave out the
                unreadable ones, with one warning that counts and names them (default: the
                first unreadable file is an error; ``python -m project check`` lists them all).
            allow_paths_outside_root: let CSV rows use absolute paths or ``..`` out of ``root``.
            sampler: shuffle (every image once per epoch) or weighted (images drawn with
                probability 1 / their class's count: classes equally often; for skewed data,
                project/data/sampling.py).
            split_file: a splits.csv saved by an earlier run: reuse its train/val/test files
                exactly (an error names any file added, missing or moved since).
            shards: a folder (or a URL LitData reads, e.g. s3://bucket/shards) written by
                ``python -m project shards``: stream its splits with LitData instead of reading
                image files (root, csv_file, classes and split_file are then not read; the
                [streaming] extra; project/data/streaming.py).
            cache_dir: where LitData keeps the chunks it downloads from remote shards (null:
                its own default); local shards are read in place.
        """
        # Every argument, as given (locals() holds only them here): data.hparams.<name>.
        self._options = Options(
            {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        )
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("data.mean and data.std must be given together (or both left null)")
        self._samples: dict[str, list[Sample]] | None = None
        self._class_names: list[str] = []
        self._mean_std: tuple[list[float], list[float]] | None = None
        self._untransformed: dict[str, ImageDataset] = {}  # per split, decoded once if cached
        self._cache_plan: CachePlan | None = None  # decided once, for all splits together
        self._check_sample: dict | None = None  # inference_sample(), made once
        self._split_rows_cache: tuple[list, dict] | None = None  # rows + hash (_split_rows)
        self.datasets: dict[str, torch.utils.data.Dataset] = {}  # what the loaders serve
        self.batch_augment: BatchRandomAffine | None = None  # set by setup("fit") for "digits"
        self._shards = None  # ShardSource when data.shards is set (project/data/streaming.py)

    # ------------------------------------------------------------------ where the samples come from

    @property
    def hparams(self) -> Options:
        return self._options

    @property
    def root(self) -> Path:
        """data.root; without it the CSV's own folder (its paths are relative to it), else the
        bundled digits."""
        if self.hparams.root is not None:
            return Path(self.hparams.root)
        if self.hparams.csv_file is not None:
            return Path(self.hparams.csv_file).parent
        return DIGITS_ROOT

    def prepare_data(self) -> None:
        # Lightning calls this once per machine before setup(): the place to write files.
        hp = self.hparams
        if hp.root is None and hp.csv_file is None and hp.shards is None:
            write_digits(DIGITS_ROOT)

    def _scan(self) -> None:
        """Find every sample and the class names (once). Raises DataError for unusable sources."""
        if self._samples is not None:
            return
        if self.hparams.shards is not None:
            self._scan_shards()
            return
        self.prepare_data()  # the class count is needed before the Trainer exists (CLI link)
        hp, root = self.hparams, self.root
        if hp.csv_file is not None:
            samples, names = scan_csv(
                Path(hp.csv_file), root, allow_outside_root=hp.allow_paths_outside_root
            )
            by_split = {"all": samples}
        elif (root / "train").is_dir() and (root / "val").is_dir():
            train, names = scan_class_folders(root / "train")
            by_split = {"train": train}
            for split in ("val", "test"):
                if (root / split).is_dir():
                    by_split[split] = self._scan_with_classes(root / split, names)
        else:
            samples, names = scan_class_folders(root)
            by_split = {"all": samples}
        if hp.skip_invalid:
            by_split = {split: self._readable(samples) for split, samples in by_split.items()}
        if hp.classes is not None:
            kept = {s: keep_classes(samples, names, hp.classes) for s, samples in by_split.items()}
            by_split = {split: samples for split, (samples, _) in kept.items()}
            names = list(hp.classes)
        if "all" in by_split:
            labels = [label for _, label in by_split["all"]]
            split_indices = stratified_split(
                labels, hp.val_fraction, hp.test_fraction, hp.split_seed
            )
            by_split = {
                split: [by_split["all"][i] for i in indices]
                for split, indices in zip(SPLITS, split_indices, strict=True)
            }
        if hp.split_file is not None:  # the recorded split, checked against today's files
            by_split = apply_split_file(Path(hp.split_file), by_split, root, names)
        self._samples, self._class_names = by_split, names

    def _scan_shards(self) -> None:
        """data.shards: the classes and the split the shards were written with."""
        from project.data.streaming import ShardSource

        hp = self.hparams
        for name in ("csv_file", "classes", "split_file"):
            if hp[name] is not None:
                raise DataError(
                    f"data.{name}: not used with data.shards (the shards hold their classes and "
                    "split; give it to python -m project shards instead)"
                )
        self._shards = ShardSource(hp.shards, hp.cache_dir)
        self._samples, self._class_names = self._shards.samples, self._shards.class_names
        self._split_rows_cache = (self._shards.rows, split_hash(self._shards.rows))

    def samples(self, split: str) -> list[Sample]:
        """(file, class index) of every image of ``split`` (empty when there is no such split)."""
        self._scan()
        return list(self._samples.get(split, []))

    def split_rows(self) -> list:
        """(split, path relative to the root, class name) of every image, split by split."""
        return list(self._split_rows()[0])

    @staticmethod
    def _readable(samples: list[Sample]) -> list[Sample]:
        """skip_invalid: the samples whose files decode, and one warning about the others."""
        kept, errors = drop_unreadable(samples)
        if errors:
            first = "; ".join(str(error) for error in errors[:3])
            warnings.warn(
                f"skip_invalid: left out {len(errors)} unreadable image file(s) of "
                f"{len(samples)}, e.g. {first}",
                stacklevel=2,
            )
        if not kept:
            raise DataError("skip_invalid: no readable image files left")
        return kept

    @staticmethod
    def _scan_with_classes(folder: Path, class_names: list[str]) -> list[Sample]:
        """Samples of a val/ or test/ folder, indexed by the train/ folder's class names."""
        samples, names = scan_class_folders(folder)
        extra = sorted(set(names) - set(class_names))
        if extra:
            raise DataError(f"{folder}: classes {extra} do not exist in the train/ folder")
        return [(path, class_names.index(names[label])) for path, label in samples]

    @property
    def class_names(self) -> list[str]:
        self._scan()
        return self._class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self, split: str = "train") -> list[int]:
        """Images per class in ``split`` (model.class_weights: auto, the data check)."""
        self._scan()
        return class_counts([label for _, label in self._samples[split]], self.num_classes)

    def _split_rows(self) -> list:
        """(split, path, label) of every sample: made once, as the split itself is (every
        checkpoint stores its hash, so it is not rebuilt and re-sorted per save)."""
        self._scan()  # shards: sets the rows as stored
        if self._split_rows_cache is None:
            rows = split_rows(self._samples, self.root, self._class_names)
            self._split_rows_cache = (rows, split_hash(rows))
        return self._split_rows_cache

    def split_record(self) -> dict:
        """What a checkpoint stores about the split: SHA-256 of the file lists, and their count."""
        return self._split_rows()[1]

    def write_split_file(self, folder: Path) -> Path:
        """splits.csv (split, path, label) in the run's log folder (project/data/split_file.py)."""
        return write_split_file(folder, self._split_rows()[0])

    def inference_settings(self) -> dict:
        """What a deployed model needs to prepare an image and name its prediction.

        Stored in every checkpoint (both loops) and in exported ONNX files' metadata.
        ``crop_ratio`` only where evaluation crops (photos: shorter side to image_size x ratio,
        then a center crop); absent, the image is squashed to a square, as for the digits.
        """
        mean, std = self.normalization()
        settings = {
            "class_names": list(self.class_names),
            "image_size": self.hparams.image_size,
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
        }
        crop_ratio = self.eval_crop_ratio()
        if crop_ratio is not None:  # python -m project serve crops as predict does
            settings["crop_ratio"] = float(crop_ratio)
        return settings

    def inference_sample(self) -> dict:
        """A few validation images as evaluation prepares them before normalizing (resized or
        cropped, uint8, N x 3 x S x S) and their labels: stored in every checkpoint's inference
        settings (key ``sample``), so export, quantize and prune can check a deployed file
        against the checkpoint where the data is not (project/deploy/checkpoint_data.py).
        At most SAMPLE_IMAGES images and SAMPLE_BYTES bytes (224 px: 13 images, 2 MB)."""
        if self._check_sample is None:
            val = self._labeled("val")
            size = self.hparams.image_size
            count = min(len(val), SAMPLE_IMAGES, max(1, SAMPLE_BYTES // (3 * size * size)))
            generator = torch.Generator().manual_seed(self.hparams.split_seed)
            order = torch.randperm(len(val), generator=generator)[:count].tolist()
            geometry = v2.Compose(self.eval_transform().transforms[:-1])  # all but normalizing
            images = [geometry(val.read(i)) for i in order]  # 3 x S x S uint8 (load_image)
            self._check_sample = {
                "images": torch.stack(images).to(torch.uint8).contiguous(),
                "labels": torch.tensor([val.targets[i] for i in order]),  # folders and shards
                "split": "val",
            }
        return self._check_sample

    # ------------------------------------------------------------------ datasets and transforms

    def normalization(self) -> tuple[list[float], list[float]]:
        """(mean, std): the configured values, else measured on (up to 2000) training images."""
        if self.hparams.mean is not None:
            return list(self.hparams.mean), list(self.hparams.std)
        weights = self.preprocessing_weights()
        if weights is not None:  # the statistics the pretrained weights were trained with
            preset = weights.transforms()
            return list(preset.mean), list(preset.std)
        if self._mean_std is None:
            train = self._labeled("train")
            generator = torch.Generator().manual_seed(self.hparams.split_seed)
            # The count of the whole split (a stream's len() is one process's share under DDP).
            count = len(self._samples["train"])
            order = torch.randperm(count, generator=generator)[:MAX_IMAGES_FOR_STATS]
            # Measured at the size the network sees: resizing changes the pixel statistics.
            to_size = resize(self.hparams.image_size)
            self._mean_std = channel_mean_std(to_size(train.read(i)) for i in order.tolist())
        return self._mean_std

    def preprocessing_weights(self):
        """The torchvision weights named by ``preprocessing`` (None when not set)."""
        if self.hparams.preprocessing is None:
            return None
        from torchvision.models import get_weight  # only needed when preprocessing is set

        try:
            return get_weight(self.hparams.preprocessing)
        except (KeyError, ValueError, AttributeError):
            raise DataError(
                f"data.preprocessing {self.hparams.preprocessing!r}: not a torchvision weights "
                "name (e.g. ResNet18_Weights.IMAGENET1K_V1)"
            ) from None

    def eval_crop_ratio(self) -> float | None:
        """Resize-then-crop ratio for evaluation (None: squash): the weights' own, else 256/224."""
        crop = self.hparams.eval_crop
        photos = self.hparams.augmentation in ("natural", "trivialaugment", "randaugment")
        if not (crop or (crop is None and photos)):
            return None
        weights = self.preprocessing_weights()
        if weights is None:
            return 256 / 224
        preset = weights.transforms()
        return preset.resize_size[0] / preset.crop_size[0]

    def _labeled(self, split: str) -> ImageDataset:
        """The untransformed dataset of one split (decoded into memory if cache_images)."""
        self._scan()
        if split not in self._untransformed:
            if split not in self._samples:
                where = self.hparams.shards or self.root
                raise DataError(f"{where}: no {split}/ folder, so there is no {split} split")
            if self._shards is not None:  # streamed: no cache (the chunks are read as needed)
                self._untransformed[split] = self._shards.dataset(split)
                return self._untransformed[split]
            dataset = ImageDataset(self._samples[split], self._class_names)
            plan = self.cache_plan()
            self._untransformed[split] = (
                dataset.decode_all(plan.shrink()) if plan.enabled else dataset
            )
        return self._untransformed[split]

    def cache_plan(self) -> CachePlan:
        """Whether the decoded images are kept in memory (cache_images), decided once for the
        files of every split before any is decoded; says so in one line (process 0 only)."""
        if self._cache_plan is None:
            self._scan()
            if self._shards is not None:
                self._cache_plan = CachePlan(False, 0, 0, 0, "data.shards: images are streamed")
                if self.hparams.cache_images is True and is_main_process():
                    print("note: data.cache_images does not apply to data.shards (streamed)")
                return self._cache_plan
            paths = [path for samples in self._samples.values() for path, _ in samples]
            option = self.hparams.cache_images
            # Every transform begins with the same resize to image_size x image_size: the cache
            # can hold that, and no epoch repeats it.
            square = only_square_resize(self.hparams.augmentation, self.eval_crop_ratio())
            self._cache_plan = plan_cache(option, paths, self.hparams.image_size, square=square)
            if option == "auto" and is_main_process():
                print(self._cache_plan.message)
        return self._cache_plan

    def eval_transform(self) -> v2.Compose:
        """Validation, test and predict's transform: resize (or crop, for photos), normalize."""
        mean, std = self.normalization()
        return eval_transform(self.hparams.image_size, mean, std, self.eval_crop_ratio())

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        mean, std = self.normalization()
        evaluate = self.eval_transform()
        if stage in ("fit", "validate", "test", None):
            # A square cache: every transform is that resize (done once) and normalizing, nothing
            # random and one size, so each batch is transformed at once (ImageDataset.__getitems__).
            batches = self.cache_plan().enabled and self.cache_plan().square
        if stage in ("fit", None):
            augment = train_transform(hp.image_size, mean, std, hp.augmentation)
            if self._shards is not None:  # LitData shuffles, with the run's seed and the epoch
                seed = torch.initial_seed() % 2**31
                self.datasets["train"] = self._shards.dataset("train", augment, True, seed)
            else:
                self.datasets["train"] = self._labeled("train").with_transform(augment, batches)
            if hp.augmentation == "digits":  # per batch, on the device: see augment_batch
                black = [(0.0 - m) / s for m, s in zip(mean, std, strict=True)]
                self.batch_augment = BatchRandomAffine(fill=black)
        if stage in ("fit", "validate", None):
            self.datasets["val"] = self._labeled("val").with_transform(evaluate, batches)
        if stage in ("test", None):
            self.datasets["test"] = self._labeled("test").with_transform(evaluate, batches)
        if stage == "predict":
            if hp.predict_root is None:
                raise DataError("predict needs --data.predict_root FOLDER (images to classify)")
            self.datasets["predict"] = UnlabeledImageDataset(hp.predict_root, evaluate)

    # ------------------------------------------------------------------ batch augmentation

    def augment_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Training batches only, after they reach the device ("digits": a random affine per
        image). The manual loop calls this itself; Lightning from on_after_batch_transfer."""
        return images if self.batch_augment is None else self.batch_augment(images)

    # ------------------------------------------------------------------ loaders

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        hp = self.hparams
        workers = default_num_workers() if hp.num_workers is None else hp.num_workers
        pin = torch.cuda.is_available() if hp.pin_memory is None else hp.pin_memory
        dataset = self.datasets[split]
        if self._shards is not None and split != "predict":
            return self._stream_loader(dataset, train, workers, pin)
        sampler = None
        if train and hp.sampler == "weighted":  # classes drawn equally often, DDP-correct
            labels = [label for _, label in self._samples["train"]]
            sampler = ClassBalancedSampler(labels, seed=torch.initial_seed() % 2**31)
        return DataLoader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=train and sampler is None,  # only training sees a new order each epoch
            sampler=sampler,
            # A last batch of 1 image breaks BatchNorm in training; evaluation keeps every image.
            drop_last=train and len(dataset) > hp.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,  # keep workers (and their caches) between epochs
            pin_memory=pin,
        )

    def _stream_loader(self, dataset, train: bool, workers: int, pin: bool):
        """LitData's StreamingDataLoader over a shards split (it shards across processes and
        workers itself, and has state_dict() for resuming mid-epoch)."""
        from project.data.streaming import stream_loader

        if train and self.hparams.sampler == "weighted":
            raise DataError(
                "data.sampler weighted: not available with data.shards (a stream is read in "
                "chunks, not drawn image by image); use --model.init_args.class_weights auto"
            )
        return stream_loader(dataset, self.hparams.batch_size, train, workers, pin)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
