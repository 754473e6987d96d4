"""ImageDataModule: the one place that turns image files into train/val/test/predict DataLoaders.

Both training loops use it (the Lightning Trainer and the plain loop in project/manual/). Sources:

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

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

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
from project.data.splits import stratified_split
from project.data.transforms import (
    Augmentation,
    BatchRandomAffine,
    channel_mean_std,
    eval_transform,
    resize,
    train_transform,
)

SPLITS = ("train", "val", "test")
# Normalization statistics are estimated from at most this many training images.
MAX_IMAGES_FOR_STATS = 2000


def default_num_workers() -> int:
    """One core stays with the training loop; the rest (at most 4) decode images."""
    return min(4, max(0, (os.cpu_count() or 1) - 1))


class ImageDataModule(LightningDataModule):
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
        cache_images: bool = False,
        pin_memory: bool | None = None,
        skip_invalid: bool = False,
        allow_paths_outside_root: bool = False,
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
            cache_images: decode every image once into memory (for datasets that fit in RAM).
            pin_memory: page-locked batches for faster GPU copies; null: when CUDA is available.
            skip_invalid: decode every file once when the data is scanned and leave out the
                unreadable ones, with one warning that counts and names them (default: the
                first unreadable file is an error; ``python -m project check`` lists them all).
            allow_paths_outside_root: let CSV rows use absolute paths or ``..`` out of ``root``.
        """
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("data.mean and data.std must be given together (or both left null)")
        self.save_hyperparameters()
        self._samples: dict[str, list[Sample]] | None = None
        self._class_names: list[str] = []
        self._mean_std: tuple[list[float], list[float]] | None = None
        self._untransformed: dict[str, ImageDataset] = {}  # per split, decoded once if cached
        self.datasets: dict[str, torch.utils.data.Dataset] = {}  # what the loaders serve
        self.batch_augment: BatchRandomAffine | None = None  # set by setup("fit") for "digits"

    # ------------------------------------------------------------------ where the samples come from

    @property
    def root(self) -> Path:
        return Path(self.hparams.root) if self.hparams.root is not None else DIGITS_ROOT

    def prepare_data(self) -> None:
        # Lightning calls this once per machine before setup(): the place to write files.
        if self.hparams.root is None:
            write_digits(DIGITS_ROOT)

    def _scan(self) -> None:
        """Find every sample and the class names (once). Raises DataError for unusable sources."""
        if self._samples is not None:
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
        self._samples, self._class_names = by_split, names

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

    def inference_settings(self) -> dict:
        """What a deployed model needs to prepare an image and name its prediction.

        Stored in every checkpoint (both loops) and in exported ONNX files' metadata.
        """
        mean, std = self.normalization()
        return {
            "class_names": list(self.class_names),
            "image_size": self.hparams.image_size,
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
        }

    # ------------------------------------------------------------------ datasets and transforms

    def normalization(self) -> tuple[list[float], list[float]]:
        """(mean, std): the configured values, else measured on (up to 2000) training images."""
        if self.hparams.mean is not None:
            return list(self.hparams.mean), list(self.hparams.std)
        if self._mean_std is None:
            train = self._labeled("train")
            generator = torch.Generator().manual_seed(self.hparams.split_seed)
            order = torch.randperm(len(train), generator=generator)[:MAX_IMAGES_FOR_STATS]
            # Measured at the size the network sees: resizing changes the pixel statistics.
            to_size = resize(self.hparams.image_size)
            self._mean_std = channel_mean_std(to_size(train.read(i)) for i in order.tolist())
        return self._mean_std

    def _labeled(self, split: str) -> ImageDataset:
        """The untransformed dataset of one split (decoded into memory if cache_images)."""
        self._scan()
        if split not in self._untransformed:
            if split not in self._samples:
                raise DataError(f"{self.root}: no {split}/ folder, so there is no {split} split")
            dataset = ImageDataset(self._samples[split], self._class_names)
            self._untransformed[split] = (
                dataset.decode_all() if self.hparams.cache_images else dataset
            )
        return self._untransformed[split]

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        mean, std = self.normalization()
        evaluate = eval_transform(hp.image_size, mean, std)
        if stage in ("fit", None):
            augment = train_transform(hp.image_size, mean, std, hp.augmentation)
            self.datasets["train"] = self._labeled("train").with_transform(augment)
            if hp.augmentation == "digits":  # per batch, on the device: see augment_batch
                black = [(0.0 - m) / s for m, s in zip(mean, std, strict=True)]
                self.batch_augment = BatchRandomAffine(fill=black)
        if stage in ("fit", "validate", None):
            self.datasets["val"] = self._labeled("val").with_transform(evaluate)
        if stage in ("test", None):
            self.datasets["test"] = self._labeled("test").with_transform(evaluate)
        if stage == "predict":
            if hp.predict_root is None:
                raise DataError("predict needs --data.predict_root FOLDER (images to classify)")
            self.datasets["predict"] = UnlabeledImageDataset(hp.predict_root, evaluate)

    # ------------------------------------------------------------------ batch augmentation

    def augment_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Training batches only, after they reach the device ("digits": a random affine per
        image). The manual loop calls this itself; Lightning calls the hook below."""
        return images if self.batch_augment is None else self.batch_augment(images)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training:
            images, labels = batch
            return self.augment_batch(images), labels
        return batch

    # ------------------------------------------------------------------ loaders

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        hp = self.hparams
        workers = default_num_workers() if hp.num_workers is None else hp.num_workers
        pin = torch.cuda.is_available() if hp.pin_memory is None else hp.pin_memory
        dataset = self.datasets[split]
        return DataLoader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=train,  # only training sees a new order each epoch
            # A last batch of 1 image breaks BatchNorm in training; evaluation keeps every image.
            drop_last=train and len(dataset) > hp.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,  # keep workers (and their caches) between epochs
            pin_memory=pin,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
