"""The command line: LightningCLI for fit / validate / test / predict, configured from YAML.

    python -m project fit --config configs/cnn.yaml
    python -m project test --config configs/cnn.yaml --ckpt_path PATH/TO/best-*.ckpt
    python -m project fit --config configs/cnn.yaml --config configs/presets/fast_dev_run.yaml
    python -m project fit --config configs/cnn.yaml --print_config      # the full resolved config

What it adds to LightningCLI:
  - data.num_classes is linked into the model, so the class count is never typed twice;
  - trainer.precision accepts "auto" (see project/precision.py) and logs what it chose;
  - checkpoints are loaded with weights_only=True unless you pass --weights_only false
    (a checkpoint is a pickle: loading it otherwise can run code from whoever wrote it);
  - bad data gives a one-line error before training starts.
"""

from __future__ import annotations

import sys
from typing import Literal

import lightning.pytorch as pl
from lightning.fabric.connector import _PRECISION_INPUT
from lightning.pytorch.cli import ArgsType, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from project.classifier import ImageClassifier
from project.data.datamodule import ImageDataModule
from project.data.datasets import DataError
from project.data.images import ImageLoadError
from project.precision import resolve_precision


class Trainer(pl.Trainer):
    """Lightning's Trainer, with ``precision="auto"`` resolved for the machine it runs on."""

    def __init__(self, *args, precision: Literal["auto"] | _PRECISION_INPUT = "auto", **kwargs):
        resolved = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        if precision == "auto":
            rank_zero_info(f"precision: auto -> {resolved}")
        super().__init__(*args, precision=resolved, **kwargs)


class ImageClassifierCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The DataModule counts the classes in the data; the model reads the count from it.
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:  # run=False: no subcommand, nothing is loaded here
            return
        config = self.config[self.subcommand]
        if config.get("weights_only") is None:
            config.weights_only = True  # never unpickle arbitrary objects from a checkpoint


def main(args: ArgsType = None, run: bool = True) -> ImageClassifierCLI:
    """The entry point of ``python -m project``; tests call it with a list of arguments."""
    try:
        return ImageClassifierCLI(
            ImageClassifier,
            ImageDataModule,
            subclass_mode_model=True,
            trainer_class=Trainer,
            save_config_kwargs={"overwrite": True},
            # The model builds its own optimizer and LR schedule (project/optim.py).
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )
    except (DataError, ImageLoadError) as error:
        # A problem with the user's data, not a bug: one line, no traceback.
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
