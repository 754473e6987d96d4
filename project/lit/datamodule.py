"""ImageDataModule: the plain data pipeline (project/data/pipeline.py) as a LightningDataModule.

    python -m project fit --config configs/cnn.yaml --data.root path/to/my/images

Every argument, split, transform, cache and loader is ``ImageData``'s (plain PyTorch, which the
manual loop uses directly); this adapter adds only what Lightning calls: the split file written
into the run's log folder at ``setup("fit")``, and the device-side batch augmentation in
``on_after_batch_transfer``; and, for streamed shards (``--data.shards``), the training loader's
position in every checkpoint (``state_dict``), so a resumed run continues mid-epoch with the
images the interrupted one had not read. The arguments are documented on ``ImageData.__init__``.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import LightningDataModule

from project.data.pipeline import ImageData
from project.data.streaming import is_stream, loader_state


class ImageDataModule(ImageData, LightningDataModule):
    """``ImageData`` in Lightning's Trainer (its ``__init__``, hence the same YAML keys)."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        trainer = self.trainer  # a run with a logger has a run folder: the split goes there
        if stage in ("fit", None) and trainer is not None and trainer.logger is not None:
            # trainer.log_dir is a broadcast under DDP: every process must ask, or process 0
            # waits forever in it (only process 0 writes).
            log_dir = trainer.log_dir  # None under fast_dev_run (a dummy logger)
            if log_dir is not None and trainer.is_global_zero:
                self.write_split_file(Path(log_dir))  # the manual loop: RunLog does it

    # ---- streamed shards: where the training epoch is, in every checkpoint
    # Lightning's fit loop saves a stateful loader's state_dict() too, but restores it only when
    # it builds the loader after the checkpoint is read; with the model's schedule asking for
    # trainer.estimated_stepping_batches the loader is built first and the state is never
    # loaded (Lightning 2.6). The DataModule's own state is restored before any loader exists.

    def train_dataloader(self):
        loader = super().train_dataloader()
        self._train_loader = loader
        state = getattr(self, "_pending_loader_state", None)
        if state is not None and is_stream(loader):
            loader.load_state_dict(state)  # LitData: the epoch and how far into it
            self._pending_loader_state = None
        return loader

    def state_dict(self) -> dict:
        state = loader_state(getattr(self, "_train_loader", None))
        return {"train_loader": state} if state is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending_loader_state = state_dict.get("train_loader")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training:
            images, labels = batch
            return self.augment_batch(images), labels
        return batch
