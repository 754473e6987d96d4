"""The command line: LightningCLI for fit / validate / test / predict, configured from YAML.

    python -m project fit --config configs/cnn.yaml
    python -m project test --config configs/cnn.yaml --ckpt_path PATH/TO/best-*.ckpt
    python -m project fit --config configs/cnn.yaml --config configs/presets/fast_dev_run.yaml
    python -m project fit --config configs/cnn.yaml --print_config      # the full resolved config

What it adds to LightningCLI:
  - data.num_classes is linked into the model, so the class count is never typed twice;
  - trainer.precision accepts "auto" (see project/precision.py) and logs what it chose;
  - checkpoints are loaded with weights_only=True unless you pass --weights_only false
    (a checkpoint is a pickle: loading it otherwise can run code from whoever wrote it), and
    written atomically (project/checkpoints.py: AtomicCheckpointIO);
  - --ckpt_path last finds the newest last.ckpt of this run name, across log versions;
  - bad data, a missing/truncated/refused checkpoint: a one-line error before training starts;
  - SIGTERM or Ctrl-C: last.ckpt is saved (callbacks.CheckpointOnInterrupt), exit status non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
from lightning.fabric.connector import _PRECISION_INPUT
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.cli import ArgsType, LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.checkpoints import (
    AtomicCheckpointIO,
    CheckpointError,
    load_checkpoint,
    newest_last_checkpoint,
)
from project.classifier import ImageClassifier
from project.data.datamodule import ImageDataModule
from project.data.datasets import DataError
from project.data.images import ImageLoadError
from project.precision import resolve_precision


class Trainer(pl.Trainer):
    """Lightning's Trainer, with ``precision="auto"`` resolved for the machine it runs on and
    checkpoints written atomically (unless the config names another CheckpointIO plugin)."""

    def __init__(self, *args, precision: Literal["auto"] | _PRECISION_INPUT = "auto", **kwargs):
        resolved = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        if precision == "auto":
            rank_zero_info(f"precision: auto -> {resolved}")
        plugins = kwargs.pop("plugins", None) or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        super().__init__(*args, precision=resolved, plugins=plugins, **kwargs)


def log_location(trainer_config) -> tuple[Path, str | None]:
    """Where this config's TensorBoardLogger writes: ``<save_dir>/<name>``, and the run folder's
    name when the config fixes ``version`` (None: a new ``version_<n>`` per run). The manual loop
    reads its config the same way."""
    logger = trainer_config.get("logger")
    if logger in (None, True, False) or not hasattr(logger, "init_args"):
        return Path(trainer_config.get("default_root_dir") or ".") / "lightning_logs", None
    args = logger.init_args
    root = Path(args.save_dir) / (args.get("name") or "lightning_logs")
    version = args.get("version")
    if version is None:
        return root, None
    return root, f"version_{version}" if isinstance(version, int) else str(version)


def lightning_run_folders(trainer_config) -> tuple[list[Path], str]:
    """The log folders of earlier runs of this config's logger (version_0, version_1, ...)."""
    root, fixed = log_location(trainer_config)
    if fixed is not None:
        return [root / fixed], str(root / fixed)
    return sorted(root.glob("version_*")), f"{root}/version_*"


class ImageClassifierCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The DataModule counts the classes in the data; the model reads the count from it.
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand or not self.config[subcommand].get("ckpt_path"):
            return
        config = self.config[subcommand]
        if config.ckpt_path == "last":
            # Lightning would look only in this run's (new, empty) version folder.
            folders, description = lightning_run_folders(config.trainer)
            config.ckpt_path = str(newest_last_checkpoint(folders, description))
            rank_zero_info(f"--ckpt_path last -> {config.ckpt_path}")
        if config.ckpt_path not in ("best", "hpc", "registry") and config.weights_only is not False:
            # Before Lightning reads it: a missing, truncated or code-carrying file is a one-line
            # error naming the file, not a traceback from deep inside torch.load.
            load_checkpoint(config.ckpt_path)

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:  # run=False: no subcommand, nothing is loaded here
            return
        config = self.config[self.subcommand]
        if config.get("weights_only") is None:
            config.weights_only = True  # never unpickle arbitrary objects from a checkpoint


def one_line(error: Exception) -> str:
    """The error's own message. A DataLoader worker's error arrives wrapped in the worker's
    traceback ("Caught ImageLoadError in DataLoader worker process 0 ..."): keep its last line."""
    message = str(error).strip()
    if "Original Traceback" in message:
        last = message.splitlines()[-1]
        message = last.split(f"{type(error).__name__}: ", 1)[-1]
    return message


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
    except (DataError, ImageLoadError, CheckpointError) as error:
        # A problem with the user's data or files, not a bug: one line, no traceback.
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except FloatingPointError as error:  # the loss diverged: nothing non-finite was saved
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except SIGTERMException:
        print(
            "stopped by SIGTERM; last.ckpt saved: continue with --ckpt_path last", file=sys.stderr
        )
        raise SystemExit(143) from None  # 128 + SIGTERM, what a shell reports for it
