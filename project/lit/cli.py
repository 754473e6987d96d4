"""The command line: LightningCLI for fit / validate / test / predict, configured from YAML.

    python -m project fit --config configs/cnn.yaml
    python -m project test --config configs/cnn.yaml --ckpt_path PATH/TO/best-*.ckpt
    python -m project fit --config configs/cnn.yaml --config configs/presets/fast_dev_run.yaml
    python -m project fit --config configs/cnn.yaml --print_config      # the full resolved config

What it adds to LightningCLI:
  - data.num_classes is linked into the model, so the class count is never typed twice;
  - trainer.precision accepts "auto" (see project/core/precision.py) and logs what it chose;
  - checkpoints are loaded with weights_only=True unless you pass --weights_only false
    (a checkpoint is a pickle: loading it otherwise can run code from whoever wrote it), and
    written atomically (AtomicCheckpointIO, through project/runs/checkpoints.py);
  - --ckpt_path last finds the newest last.ckpt of this run name, across log versions;
  - bad data, a missing/truncated/refused checkpoint: a one-line error before training starts;
  - SIGTERM or Ctrl-C: last.ckpt is saved (callbacks.CheckpointOnInterrupt), exit status non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.connector import _PRECISION_INPUT
from lightning.fabric.plugins import CheckpointIO, TorchCheckpointIO
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.core import threads
from project.core.config_defaults import default_config_files
from project.core.errors import InputError, Stopped, exit_on_error
from project.core.precision import resolve_precision
from project.lit.callbacks import ThrottledProgressBar
from project.lit.classifier import ClassifierModule
from project.lit.datamodule import ImageDataModule
from project.runs.checkpoints import (
    load_checkpoint,
    model_arguments,
    newest_last_checkpoint,
    save_atomic,
)
from project.runs.folders import lightning_run_folders


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reads and writes, done by ``load_checkpoint`` and ``save_atomic``.

    Lightning's own writer may stage the file on another filesystem; this one writes next to the
    target, fsyncs and renames. Reads default to weights_only=True and name the file on failure.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        save_atomic(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict:
        if weights_only is False:  # the user's explicit choice (--weights_only false) for a file
            return torch.load(path, map_location=map_location, weights_only=False)  # they trust
        return load_checkpoint(path, map_location or "cpu")


class Trainer(pl.Trainer):
    """Lightning's Trainer, with ``precision="auto"`` resolved for the machine it runs on,
    checkpoints written atomically (unless the config names another CheckpointIO plugin) and a
    progress bar redrawn at most twice a second (unless the config names another bar)."""

    def __init__(self, *args, precision: Literal["auto"] | _PRECISION_INPUT = "auto", **kwargs):
        resolved = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        if precision == "auto":
            rank_zero_info(f"precision: auto -> {resolved}")
        if rule := threads.describe():  # the CPU thread rule (project/core/threads.py)
            rank_zero_info(rule)
        plugins = kwargs.pop("plugins", None) or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        super().__init__(*args, precision=resolved, plugins=plugins, **kwargs)
        # Lightning adds its default bar when the config names none: swap in the throttled one.
        default_bar = [i for i, c in enumerate(self.callbacks) if type(c) is TQDMProgressBar]
        if default_bar:
            self.callbacks[default_bar[0]] = ThrottledProgressBar()


class ImageClassifierCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The DataModule counts the classes in the data; the model reads the count from it.
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand in ("validate", "test") and not self.config[subcommand].get("ckpt_path"):
            # Lightning would evaluate the freshly initialized weights without a word.
            print(
                f"warning: {subcommand} without --ckpt_path evaluates untrained weights; pass "
                "--ckpt_path last, best or a .ckpt file to evaluate a trained model",
                file=sys.stderr,
            )
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

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's own (it applies a checkpoint's model arguments over the config), with
        --weights_only false honoured (Lightning's reads weights_only=True whatever it says) and
        the arguments of checkpoints from before the optimizer was injected translated first
        (project/runs/checkpoints.py model_arguments). Overrides a private method of Lightning 2.6:
        tests/test_injection.py's old checkpoint fails if it stops being called."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        if self.config[subcommand].get("weights_only") is False:  # the user trusts this file
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        else:
            checkpoint = load_checkpoint(ckpt_path)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        class_path = hparams.get("_class_path")
        hparams = model_arguments(hparams)
        if not hparams:
            return
        model = {"class_path": class_path, "dict_kwargs": hparams} if class_path else hparams
        try:
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")
            raise

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:  # run=False: no subcommand, nothing is loaded here
            return
        config = self.config[self.subcommand]
        if config.get("weights_only") is None:
            config.weights_only = True  # never unpickle arbitrary objects from a checkpoint


class ConfigOnlyCLI(ImageClassifierCLI):
    """Parses and checks a config exactly as ``fit`` would and builds nothing from it: no
    model, data or trainer (``python -m project sweep`` checks its keys against it)."""

    def instantiate_classes(self) -> None:
        pass


def refuse_top_level_optimizer(args) -> None:
    """LightningCLI's --optimizer / --lr_scheduler would configure a second optimizer beside the
    model's own (it builds one over named parameter groups): one line naming the option to use."""
    for arg in args if isinstance(args, list) else []:
        for option in ("--optimizer", "--lr_scheduler"):
            if arg == option or arg.startswith((f"{option}=", f"{option}.")):
                raise InputError(
                    f"{option}: the model builds its optimizer over its own parameter groups; "
                    f"use --model.init_args.{option[2:]} (e.g. --model.init_args.optimizer "
                    "torch.optim.SGD --model.init_args.optimizer.lr 0.1)"
                )


def main(args: ArgsType = None, run: bool = True, build: bool = True) -> ImageClassifierCLI:
    """The entry point of ``python -m project``; tests call it with a list of arguments.
    ``build=False`` (with ``run=False``): only parse, into ``.config`` (``ConfigOnlyCLI``)."""
    with exit_on_error():  # one line and a known exit status (project/core/errors.py)
        refuse_top_level_optimizer(sys.argv[1:] if args is None else args)
        try:
            return (ImageClassifierCLI if build else ConfigOnlyCLI)(
                ClassifierModule,  # any of project/lit/classifier.py's, or a subclass of your own
                ImageDataModule,
                subclass_mode_model=True,
                trainer_class=Trainer,
                save_config_kwargs={"overwrite": True},
                # The model builds its own optimizer and LR schedule from the injected
                # model.init_args.optimizer / lr_scheduler (project/core/recipe.py).
                auto_configure_optimizers=False,
                # configs/defaults.yaml, read before any --config by every subcommand (the
                # manual loop reads it too): the logger, callbacks and trainer settings shared by
                # every model config (project/core/config_defaults.py).
                # run=False (tests, lr_find) parses without a subcommand: the top-level parser.
                parser_kwargs={
                    "prog": "python -m project",  # not "__main__.py" in --help and errors
                    **{
                        subcommand: {"default_config_files": default_config_files()}
                        for subcommand in ImageClassifierCLI.subcommands()
                    },
                }
                if run
                else {"default_config_files": default_config_files()},
                args=args,
                run=run,
            )
        except SIGTERMException:
            message = "stopped by SIGTERM; last.ckpt saved: continue with --ckpt_path last"
            raise Stopped(message, "SIGTERM") from None
