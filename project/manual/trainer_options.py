"""The ``trainer:`` section of a config, read without Lightning: the names of Trainer's arguments.

The manual loop reads the same YAML as ``python -m project``; its parser takes the ``trainer:``
keys from ``trainer_options``'s signature below, so a misspelt key is refused in both loops,
and the manual loop never imports Lightning to read them. The names are Lightning's
``Trainer.__init__`` arguments; tests/test_boundary.py fails when the two lists differ (a new
Lightning release adding or renaming one). Callbacks stay as written (class paths and
init_args): the manual loop reads what it implements from them (project/manual/settings.py) and
instantiates none of them. A TensorBoardLogger is read with its own arguments
(``TensorBoardLoggerOptions``, so a config's ``init_args`` merge as LightningCLI merges them);
any other logger only by its name.
"""

from __future__ import annotations

from typing import Any


def trainer_options(
    accelerator: str = "auto",
    strategy: Any = "auto",
    devices: list[int] | str | int = "auto",
    num_nodes: int = 1,
    precision: str | int | None = "auto",  # project/lit/cli.py's Trainer resolves "auto"
    logger: bool | LoggerOptions | list[LoggerOptions] | None = None,
    callbacks: list[dict] | dict | None = None,
    fast_dev_run: int | bool = False,
    max_epochs: int | None = None,
    min_epochs: int | None = None,
    max_steps: int = -1,
    min_steps: int | None = None,
    max_time: Any = None,
    # A count (int) or a share (float); 1.0, not Lightning's None, means "all" here: with a None
    # default jsonargparse wraps the type in typing.Optional, whose cache may hand back a
    # float-first union made elsewhere in the process (Lightning's own Optional[Union[float, int]]
    # hints), and "5" then parsed as the share 5.0 (tests/test_manual.py).
    limit_train_batches: int | float | None = 1.0,
    limit_val_batches: int | float | None = 1.0,
    limit_test_batches: int | float | None = 1.0,
    limit_predict_batches: int | float | None = 1.0,
    overfit_batches: int | float = 0.0,
    val_check_interval: Any = None,
    check_val_every_n_epoch: int | None = 1,
    num_sanity_val_steps: int | None = None,
    log_every_n_steps: int | None = None,
    enable_checkpointing: bool | None = None,
    enable_progress_bar: bool | None = None,
    enable_model_summary: bool | None = None,
    accumulate_grad_batches: int = 1,
    gradient_clip_val: int | float | None = None,
    gradient_clip_algorithm: str | None = None,
    deterministic: bool | str | None = None,
    benchmark: bool | None = None,
    inference_mode: bool = True,
    use_distributed_sampler: bool = True,
    profiler: Any = None,
    detect_anomaly: bool = False,
    barebones: bool = False,
    plugins: Any = None,
    sync_batchnorm: bool = False,
    reload_dataloaders_every_n_epochs: int = 0,
    default_root_dir: str | None = None,
    enable_autolog_hparams: bool = True,
    model_registry: str | None = None,
) -> None:
    """Lightning's Trainer arguments (their documentation: ``python -m project fit --help``)."""


class LoggerOptions:
    """A ``trainer.logger`` entry as the manual loop reads it (it instantiates no logger)."""


class TensorBoardLoggerOptions(LoggerOptions):
    """TensorBoardLogger's arguments: where the manual loop writes its TensorBoard files."""

    def __init__(
        self,
        save_dir: str,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | None = None,
    ):
        self.save_dir, self.name, self.version = save_dir, name, version


class OtherLogger(LoggerOptions):
    """Any other logger (CSVLogger, ...): its class name, to say that the manual loop does not
    write it, and where it would write, where the manual loop writes TensorBoard files instead."""

    def __init__(
        self,
        class_name: str,
        save_dir: str = ".",
        name: str | None = "lightning_logs",
        version: int | str | None = None,
    ):
        self.class_name, self.save_dir, self.name, self.version = (
            class_name,
            save_dir,
            name,
            version,
        )


def plain_logger(entry):
    """One ``trainer.logger`` entry of a loaded YAML, as the classes above."""
    if not isinstance(entry, dict) or "class_path" not in entry:
        return entry  # true, false, null, or an override of init_args only
    class_name = entry["class_path"].rsplit(".", 1)[-1]
    if class_name.endswith("TensorBoardLogger"):  # Lightning's, or a subclass of it by name
        return {**entry, "class_path": f"{__name__}.TensorBoardLoggerOptions"}
    kept = {k: v for k, v in (entry.get("init_args") or {}).items() if k in OTHER_LOGGER_KEYS}
    return {
        "class_path": f"{__name__}.OtherLogger",
        "init_args": {"class_name": class_name, **kept},
    }


OTHER_LOGGER_KEYS = ("save_dir", "name", "version")
