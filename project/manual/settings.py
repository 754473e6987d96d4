"""Read the LightningCLI's YAML files for the manual loop: same files, same checks, plain settings.

    python -m project.manual fit --config configs/cnn.yaml --trainer.max_epochs 5

A plain jsonargparse parser (no Lightning): ``model`` is the recipe (project/core/recipe.py) that
the config's LightningModule wraps, with the same arguments; ``data`` is ``ImageData``
(project/data/pipeline.py), whose arguments the LightningDataModule shares; ``trainer`` is the
list of Trainer arguments (project/manual/trainer_options.py). It reads the same shared defaults
first (configs/defaults.yaml), so a config that one loop accepts the other accepts too, and a typo
is an error in both. The manual loop keeps from the ``trainer:`` section only the settings a plain
loop needs (``LoopSettings``); a trainer option it does not implement is an error, never silently
ignored, and a logger other than TensorBoard is named in one line.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, set_loader

from project.core.config_defaults import default_config_files
from project.core.errors import InputError
from project.core.precision import resolve_precision
from project.core.recipe import LIGHTNING_MODULES, RECIPES, ClassifierRecipe
from project.data.pipeline import ImageData
from project.manual.trainer_options import plain_logger, trainer_options
from project.runs.folders import log_location

STAGES = ("fit", "validate", "test")

# Trainer options the manual loop does not implement, with the value that means "not used".
NOT_IMPLEMENTED = {
    "num_nodes": 1,
    "strategy": "auto",
    "fast_dev_run": False,
    "val_check_interval": None,
    "min_epochs": None,
    "min_steps": None,
    "max_time": None,
}


class ConfigError(InputError, ValueError):
    """The config asks for something the manual loop cannot do."""


@dataclass
class CheckpointSettings:
    """What a ModelCheckpoint with a ``monitor`` does; the manual loop does the same."""

    monitor: str = "val/acc"
    mode: str = "max"
    save_top_k: int = 1  # 1: keep the best only; -1: keep every epoch's file; 0: none
    filename: str = "epoch={epoch}-step={step}"  # ModelCheckpoint's default name


@dataclass
class EarlyStoppingSettings:
    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0


@dataclass
class LoopSettings:
    """The trainer settings a plain PyTorch loop needs."""

    max_epochs: int
    max_steps: int  # -1: no limit
    precision: str  # resolved: "32-true", "bf16-mixed" or "16-mixed"
    device: torch.device
    deterministic: bool
    gradient_clip_val: float | None
    gradient_clip_algorithm: str
    accumulate_grad_batches: int  # optimizer steps every this many batches (1: every batch)
    limit_train_batches: int | float | None  # batches per epoch: a count, or a share (float)
    limit_val_batches: int | float | None
    log_every_n_steps: int
    num_sanity_val_steps: int
    check_val_every_n_epoch: int  # validation (and the best checkpoint) after every n-th epoch
    log_root: Path  # <save_dir>/<name> of the TensorBoardLogger
    log_folder: str | None  # the logger's fixed version folder, or None for manual_version_<n>
    checkpoint: CheckpointSettings | None  # the best checkpoint(s)
    latest_filename: str | None  # written after every epoch, replacing the previous one
    early_stopping: EarlyStoppingSettings | None
    validation_figures: bool = False  # the config has ValidationFigures: log the same images
    hyperparameters: bool = False  # the config has HyperparametersWithMetrics: the HPARAMS tab
    # The class names of the config's trainer.logger, a TensorBoardLogger subclass counted as
    # "TensorBoardLogger"; () for logger false. The manual loop writes TensorBoard files whatever
    # they are, and says so when they differ (run_log.RunLog).
    logger_classes: tuple[str, ...] = ("TensorBoardLogger",)
    # Lightning's overfit_batches: > 0 limits training and validation to this many batches (or
    # this share) and turns the training shuffle off, so every epoch sees the same batches.
    overfit_batches: int | float = 0.0


# The LightningModules the configs name (project/lit/classifier.py, or the old project.classifier),
# and the plain recipe each wraps: the manual loop reads
# ``model.class_path: project.lit.classifier.CNNClassifier`` as CNNRecipe.
LIGHTNING_PREFIXES = tuple(f"{module}." for module in LIGHTNING_MODULES)
PARSER_MODE = "yaml_recipes"


def plain_class_paths(value):
    """A loaded YAML value with our LightningModules' class paths replaced by their recipes',
    and loggers by the plain classes of project/manual/trainer_options.py."""
    if isinstance(value, dict):
        return {
            key: plain_loggers(item) if key == "logger" else plain_class_paths(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [plain_class_paths(item) for item in value]
    if isinstance(value, str) and value.startswith(LIGHTNING_PREFIXES):
        recipe = RECIPES.get(value.rpartition(".")[2])
        if recipe is not None and value.rpartition(".")[0] in LIGHTNING_MODULES:
            return f"{recipe.__module__}.{recipe.__qualname__}"
    return value


def lightning_class_path(class_path: str) -> str:
    """The LightningModule's class path for a recipe's (the inverse of plain_class_paths)."""
    for name, recipe in RECIPES.items():
        if class_path == f"{recipe.__module__}.{recipe.__qualname__}":
            return LIGHTNING_PREFIXES[0] + name
    return class_path


def plain_loggers(value):
    return (
        [plain_logger(entry) for entry in value] if isinstance(value, list) else plain_logger(value)
    )


set_loader(PARSER_MODE, lambda text: plain_class_paths(yaml.safe_load(text)), (yaml.YAMLError,))


@functools.cache  # one parser per process: building it reads every signature once
def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m project.manual",
        description=__doc__.split("\n")[0],
        # configs/defaults.yaml first, as python -m project reads it
        # (project/core/config_defaults.py)
        default_config_files=default_config_files(),
        parser_mode=PARSER_MODE,
        exit_on_error=False,  # project/core/errors.py prints one line and exits 2
        allow_abbrev=False,  # --trainer.max_epoch is a typo, not --trainer.max_epochs
    )
    parser.add_argument("stage", choices=STAGES, help="fit, validate or test")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file(s), in order")
    parser.add_argument("--seed_everything", type=bool | int, default=True)
    parser.add_argument(
        "--ckpt_path", type=str | None, default=None, help="validate/test: weights to evaluate"
    )
    parser.add_argument(
        "--resume",
        type=str | None,
        default=None,
        help="fit: a checkpoint to continue from, or 'last' for this run name's newest last.ckpt",
    )
    parser.add_argument("--weights_only", type=bool | None, default=None, help="accepted, ignored")
    parser.add_subclass_arguments(ClassifierRecipe, "model", required=True)
    parser.add_class_arguments(ImageData, "data")
    parser.add_function_arguments(trainer_options, "trainer")
    # LightningCLI's link: the model's class count comes from the data, never typed twice.
    parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
    return parser


BOILERPLATE = (
    "Does not validate",
    "Subtypes:",
    "Errors:",
    "Given value",
    "- Expected a <class 'NoneType'>",
    "- Expected a path but",
)


def one_line(message: str) -> str:
    """jsonargparse's nested report of a bad key or value, as one line: the innermost keys and
    the first reason, e.g. 'model.optimizer: ... has no attribute 'Nope''."""
    keys, reasons = [], []
    for line in (line.strip() for line in message.splitlines()):
        if line.startswith('Parser key "'):
            keys.append(line.split('"')[1])
        elif line and not line.startswith(BOILERPLATE) and not line.startswith("- Problem with"):
            reasons.append(line.removeprefix("- "))
    where = ".".join(keys)
    return f"{where}: {reasons[0]}" if where and reasons else (reasons or [message])[0]


def parse(args: list[str] | None = None) -> Namespace:
    parser = build_parser()
    try:
        config = parser.parse_args(args)
    except Exception as error:  # jsonargparse's ArgumentError: a bad key or value
        raise ConfigError(one_line(str(error))) from None
    return config


def batch_count_or_share(value: int | float | None, name: str) -> int | float:
    """A batch limit as Lightning reads it (trainer/setup.py ``_determine_batch_limits``): a
    float from 0.0 to 1.0 is a share of the batches (None: all), an int or a whole float above
    1 a number of them (5.0 is 5 batches); anything else is refused, naming the option."""
    if value is None:
        return 1.0
    if 0 <= value <= 1:
        return value
    if value > 1 and value % 1.0 == 0:
        return int(value)
    raise ConfigError(
        f"trainer.{name}={value}: give a share of the batches from 0.0 to 1.0, or a whole number "
        "of batches"
    )


def seed_everything(seed: bool | int) -> int | None:
    """Seed every random generator a training run draws from (Lightning: seed_everything)."""
    if seed is False:
        return None
    if seed is True:  # LightningCLI's default: a fresh seed, printed so the run can be repeated
        seed = random.SystemRandom().randrange(2**31)
        print(f"seed_everything: {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def build_data_and_model(config: Namespace) -> tuple[ImageData, ClassifierRecipe]:
    """The data, then the recipe with the data's class count (the link in build_parser), with
    the config's optimizer and scheduler classes made callables (LightningCLI does the same)."""
    try:
        objects = build_parser().instantiate_classes(config)
    except Exception as error:
        raise ConfigError(one_line(str(error))) from None
    return objects.data, objects.model


def _callbacks(trainer: Namespace, class_name: str) -> list[dict]:
    """The init_args of every callback of this class in the config."""
    callbacks = trainer.callbacks or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return [
        dict(callback.get("init_args") or {})
        for callback in callbacks
        if callback["class_path"].rsplit(".", 1)[-1] == class_name
    ]


def _checkpoint_settings(trainer: Namespace) -> tuple[CheckpointSettings | None, str | None]:
    """The best-checkpoint rule and the name of the every-epoch file, from ModelCheckpoint(s)."""
    best, latest = None, None
    for arguments in _callbacks(trainer, "ModelCheckpoint"):
        if arguments.get("monitor"):
            if arguments.get("save_top_k", 1) not in (-1, 0, 1):
                raise ConfigError("ModelCheckpoint save_top_k: the manual loop keeps -1, 0 or 1")
            best = best or _fields(CheckpointSettings, arguments)
        else:  # no monitor: the latest epoch is kept, under its filename
            latest = arguments.get("filename") or "epoch={epoch}-step={step}"
        if arguments.get("save_last"):
            latest = "last"
    return best, latest


def loop_settings(config: Namespace) -> LoopSettings:
    trainer = config.trainer
    for option, unused in NOT_IMPLEMENTED.items():
        if trainer.get(option) != unused:
            raise ConfigError(
                f"trainer.{option}={trainer.get(option)!r}: not implemented by the manual loop "
                f"(remove it, or use python -m project)"
            )
    for averaging in ("EMAWeightAveraging", "WeightAveraging", "StochasticWeightAveraging"):
        if _callbacks(trainer, averaging):  # Lightning swaps the averaged weights in; we do not
            raise ConfigError(
                f"trainer.callbacks {averaging}: weight averaging (EMA) is not implemented by the "
                "manual loop (remove it, or use python -m project)"
            )
    every = trainer.check_val_every_n_epoch
    if not isinstance(every, int) or every < 1:
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every!r}: the manual loop takes a whole number "
            "of epochs, 1 or more"
        )
    if str(trainer.devices) not in ("1", "auto"):
        raise ConfigError(f"trainer.devices={trainer.devices!r}: the manual loop uses one device")

    precision = str(resolve_precision(trainer.precision, trainer.accelerator))
    if precision in ("32", "32-true"):
        precision = "32-true"
    elif precision not in ("bf16-mixed", "16-mixed"):
        raise ConfigError(f"trainer.precision={precision!r}: use 32-true, bf16-mixed or 16-mixed")
    wants_gpu = trainer.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")
    if trainer.accelerator in ("gpu", "cuda") and device.type == "cpu":
        raise ConfigError(f"trainer.accelerator={trainer.accelerator}: no CUDA device found")

    log_root, run_folder = log_location(trainer)  # the same folders as the Lightning loop
    best, latest = _checkpoint_settings(trainer)
    stopping = _callbacks(trainer, "EarlyStopping")
    overfit = batch_count_or_share(trainer.overfit_batches or 0.0, "overfit_batches")
    limit_train = batch_count_or_share(trainer.limit_train_batches, "limit_train_batches")
    limit_val = batch_count_or_share(trainer.limit_val_batches, "limit_val_batches")
    if overfit > 0:  # Lightning (trainer/setup.py): overfit_batches replaces both limits
        limit_train = limit_val = overfit
    return LoopSettings(
        max_epochs=1000 if trainer.max_epochs in (None, -1) else trainer.max_epochs,
        max_steps=trainer.max_steps,
        precision=precision,
        device=device,
        deterministic=bool(trainer.deterministic),
        gradient_clip_val=trainer.gradient_clip_val,
        gradient_clip_algorithm=trainer.gradient_clip_algorithm or "norm",
        accumulate_grad_batches=trainer.accumulate_grad_batches,
        limit_train_batches=limit_train,
        limit_val_batches=limit_val,
        log_every_n_steps=trainer.log_every_n_steps or 50,
        num_sanity_val_steps=2
        if trainer.num_sanity_val_steps is None
        else trainer.num_sanity_val_steps,
        check_val_every_n_epoch=every,
        log_root=log_root,
        log_folder=run_folder,
        checkpoint=best,
        latest_filename=latest,
        early_stopping=_fields(EarlyStoppingSettings, stopping[0]) if stopping else None,
        validation_figures=bool(_callbacks(trainer, "ValidationFigures")),
        hyperparameters=bool(_callbacks(trainer, "HyperparametersWithMetrics")),
        logger_classes=logger_classes(trainer.get("logger")),
        overfit_batches=overfit,
    )


def logger_classes(logger) -> tuple[str, ...]:
    """The class name of each configured logger (one or a list); Lightning's default, for logger
    null or true, is TensorBoardLogger. By name: the manual loop imports no logger class (a
    subclass of TensorBoardLogger counts as one when its name ends in TensorBoardLogger)."""
    if logger is False:
        return ()
    if logger in (None, True):
        return ("TensorBoardLogger",)
    names = []
    for entry in logger if isinstance(logger, list) else [logger]:
        tensorboard = entry.class_path.endswith("TensorBoardLoggerOptions")
        names.append("TensorBoardLogger" if tensorboard else entry.init_args.class_name)
    return tuple(names)


def _fields(settings_class, arguments: dict):
    """The dataclass filled from the callback's init_args it knows (others keep defaults)."""
    known = settings_class.__dataclass_fields__
    return settings_class(**{k: v for k, v in arguments.items() if k in known and v is not None})
