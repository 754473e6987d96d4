"""Where a run's logs and checkpoints go: one reading of the config's logger for both loops.

    python -m project fit ...          -> lightning_logs/<name>/version_<n>/
    python -m project.manual fit ...   -> lightning_logs/<name>/manual_version_<n>/

Plain Python, no Lightning import: the manual loop and the CLI both call ``log_location``.
"""

from __future__ import annotations

from pathlib import Path


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
