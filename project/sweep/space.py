"""The sweep file (``--sweep``): which config keys to search, over what, and for which metric.

    # configs/sweeps/cnn.yaml
    metric: val/acc            # any metric the run logs at each validation
    direction: maximize        # or minimize (val/loss)
    sampler: tpe               # tpe | random
    pruner:                    # median | percentile | threshold | none
      name: median
      n_startup_trials: 3      # trials that run to the end before any is pruned
      n_warmup_steps: 2        # epochs a trial runs before it can be pruned
    parameters:                # config keys, as on the command line without the --
      model.init_args.optimizer.init_args.lr: {low: 1.0e-4, high: 3.0e-2, log: true}
      model.init_args.dropout: {low: 0.0, high: 0.4}                  # a float
      trainer.accumulate_grad_batches: {low: 1, high: 4}               # integers: int bounds
      model.init_args.optimizer.class_path: {choices: [torch.optim.AdamW, torch.optim.SGD]}

Every problem is one ``InputError`` naming the file and the key, raised before any trial runs
(``check_keys`` compares the keys with the parsed config). Plain Python and Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from project.core.errors import InputError

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "percentile", "threshold", "none")
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Parameter:
    """One searched config key: a float or int range (``log``: sampled on a log scale), or a
    list of choices (any YAML values, class paths included)."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    @property
    def kind(self) -> str:
        if self.choices:
            return "categorical"
        both_int = all(type(value) is int for value in (self.low, self.high))
        return "int" if both_int else "float"

    def suggest(self, trial) -> Any:
        """This parameter's value for ``trial`` (an optuna.Trial)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            step = self.step or 1
            return trial.suggest_int(self.key, self.low, self.high, step=step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class SweepSpec:
    parameters: tuple[Parameter, ...]
    metric: str = "val/acc"
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    source: str = "sweep file"

    def suggest(self, trial) -> dict[str, Any]:
        """{config key: value} for one trial, class paths first: a new optimizer class must be
        chosen before its init_args are set (jsonargparse applies overrides in order)."""
        ordered = sorted(self.parameters, key=lambda p: not p.key.endswith("class_path"))
        return {parameter.key: parameter.suggest(trial) for parameter in ordered}


def parse_parameter(key: str, spec: Any, source: str) -> Parameter:
    where = f"{source}: parameters.{key}"
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}")
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        known = "low, high, log, step, choices"
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)} ({known})")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise InputError(f"{where}: choices must be a non-empty list")
        return Parameter(key, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise InputError(f"{where}: a range needs both low and high (or give choices)")
    low, high = spec["low"], spec["high"]
    for name, value in (("low", low), ("high", high)):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise InputError(f"{where}: {name} must be a number, got {value!r}")
    if low > high:
        raise InputError(f"{where}: low ({low}) is above high ({high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0, got {low}")
    if log and spec.get("step") is not None:
        raise InputError(f"{where}: log and step cannot be combined")
    return Parameter(key, low=low, high=high, log=log, step=spec.get("step"))


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; one ``InputError`` naming the file and the key if unusable."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"--sweep {path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise InputError(f"--sweep {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    searched = raw.get("parameters") if isinstance(raw, dict) else None
    if not searched or not isinstance(searched, dict):
        raise InputError(f"{path}: needs a 'parameters:' mapping of config keys to search")
    unknown = set(raw) - {"parameters", "metric", "direction", "sampler", "pruner"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {sorted(unknown)}")
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise InputError(f"{path}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise InputError(f"{path}: sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
    pruner = raw.get("pruner", {"name": "median"})
    pruner = {"name": pruner} if isinstance(pruner, str) else dict(pruner or {"name": "none"})
    if pruner.get("name") not in PRUNERS:
        name = pruner.get("name")
        raise InputError(f"{path}: pruner {name!r} is not one of {', '.join(PRUNERS)}")
    parameters = tuple(
        parse_parameter(str(key), spec, str(path)) for key, spec in raw["parameters"].items()
    )
    metric = str(raw.get("metric", "val/acc"))
    return SweepSpec(parameters, metric, direction, sampler, pruner, str(path))


def check_keys(spec: SweepSpec, config) -> None:
    """Every searched key must exist in the parsed config (a jsonargparse Namespace): a typo
    would otherwise be searched for hours and change nothing."""
    for parameter in spec.parameters:
        if parameter.key not in config:
            raise InputError(
                f"{spec.source}: parameters.{parameter.key} is not a key of the config "
                "(see: python -m project fit --config ... --print_config)"
            )


def make_sampler(spec: SweepSpec, seed: int | None):
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna

    settings = {key: value for key, value in spec.pruner.items() if key != "name"}
    try:
        if spec.pruner["name"] == "median":
            return optuna.pruners.MedianPruner(**settings)
        if spec.pruner["name"] == "percentile":
            return optuna.pruners.PercentilePruner(**settings)
        if spec.pruner["name"] == "threshold":  # e.g. lower: 0.3: val/acc below 0.3 stops
            return optuna.pruners.ThresholdPruner(**settings)
        return optuna.pruners.NopPruner()
    except (TypeError, ValueError) as error:
        raise InputError(f"{spec.source}: pruner: {error}") from None
