"""The sweep file (``--sweep``): which config keys to search, over what, and for which metric.

    # configs/sweeps/cnn.yaml
    metric: val/acc            # any metric the run logs at each validation
    direction: maximize        # or minimize (val/loss)
    sampler: tpe               # tpe | random, or {name: tpe, n_startup_trials: 5}
    pruner:                    # median | percentile | threshold | none
      name: median
      n_startup_trials: 3      # trials that run to the end before any is pruned
      n_warmup_steps: 2        # epochs a trial runs before it can be pruned
    parameters:                # config keys, as on the command line without the --
      model.init_args.optimizer.init_args.lr: {low: 1.0e-4, high: 3.0e-2, log: true}
      model.init_args.dropout: {low: 0.0, high: 0.4}                  # a float
      trainer.accumulate_grad_batches: {low: 1, high: 4}               # integers: int bounds
      model.init_args.optimizer.class_path: {choices: [torch.optim.AdamW, torch.optim.SGD]}

A ``class_path`` key may instead map each class to its own parameters (its ``init_args``, by
name), searched only in the trials that chose that class:

      model.init_args.optimizer.class_path:
        choices:
          torch.optim.SGD:
            lr: {low: 1.0e-3, high: 1.0e-1, log: true}
            momentum: {low: 0.8, high: 0.99}
          torch.optim.AdamW:
            lr: {low: 1.0e-4, high: 1.0e-2, log: true}

Every problem is one ``InputError`` naming the file and the key, raised before any trial runs;
the values themselves are checked against the config's parser by project/sweep/checks.py.
Plain Python and Optuna.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from project.core.errors import InputError

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "percentile", "threshold", "none")
DIRECTIONS = ("maximize", "minimize")
# 1e-4, 3e2: numbers in YAML 1.2, strings to PyYAML (YAML 1.1 wants 1.0e-4, 3.0e+2).
EXPONENT_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


@dataclass(frozen=True)
class Parameter:
    """One searched config key: a float or int range (``log``: sampled on a log scale), or a
    list of choices (any YAML values, class paths included).

    ``name`` is Optuna's name for it: the key, or for a parameter of one class of a per-class
    space (``when``: that class) the key and the class, ``...init_args.lr[torch.optim.SGD]``."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    when: str | None = None  # the class this parameter belongs to (a per-class space)
    name: str = ""

    def __post_init__(self):
        if not self.name:
            suffix = f"[{self.when}]" if self.when else ""
            object.__setattr__(self, "name", self.key + suffix)

    @property
    def kind(self) -> str:
        if self.choices:
            return "categorical"
        both_int = all(type(value) is int for value in (self.low, self.high))
        return "int" if both_int else "float"

    @property
    def label(self) -> str:
        """A short name for tables and plots: ``lr``, ``dropout``, ``lr[SGD]``."""
        short = self.key.rsplit(".", 1)[-1]
        if self.key.endswith(".class_path"):
            short = self.key.rsplit(".", 2)[-2]  # optimizer, not class_path
        return f"{short}[{self.when.rsplit('.', 1)[-1]}]" if self.when else short

    @property
    def probe_values(self) -> list:
        """The values checked against the config before any trial: the ends, or every choice."""
        return list(self.choices) if self.choices else [self.low, self.high]

    def suggest(self, trial) -> Any:
        """This parameter's value for ``trial`` (an optuna.Trial)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = self.step or 1
            return trial.suggest_int(self.name, self.low, self.high, step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class SweepSpec:
    parameters: tuple[Parameter, ...]
    metric: str = "val/acc"
    direction: str = "maximize"
    sampler: dict = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    source: str = "sweep file"

    def suggest(self, trial) -> dict[str, Any]:
        """{config key: value} for one trial, class paths first: a new optimizer class must be
        chosen before its init_args are set (jsonargparse applies overrides in order). The
        parameters of a per-class space are drawn only for the class the trial chose."""
        chosen: dict[str, Any] = {}
        for parameter in self.ordered():
            if parameter.when is None or chosen.get(class_key(parameter)) == parameter.when:
                chosen[parameter.key] = parameter.suggest(trial)
        return chosen

    def ordered(self) -> list[Parameter]:
        """Class paths, then the other keys, then the per-class parameters."""
        return sorted(
            self.parameters,
            key=lambda p: (p.when is not None, not p.key.endswith("class_path")),
        )

    def by_name(self) -> dict[str, Parameter]:
        return {parameter.name: parameter for parameter in self.parameters}


def class_key(parameter: Parameter) -> str:
    """``a.b.init_args.lr`` of a per-class space -> ``a.b.class_path``, the key choosing it."""
    return parameter.key.rsplit(".init_args.", 1)[0] + ".class_path"


def number(value: Any) -> Any:
    """1e-4 as PyYAML leaves it (a string) -> 0.0001; anything else as it is."""
    if isinstance(value, str) and EXPONENT_NUMBER.match(value.strip()):
        return float(value)
    return value


def parse_range(key: str, spec: dict, where: str, when: str | None = None) -> Parameter:
    if "low" not in spec or "high" not in spec:
        raise InputError(f"{where}: a range needs both low and high (or give choices)")
    low, high = number(spec["low"]), number(spec["high"])
    for name, value in (("low", low), ("high", high)):
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            raise InputError(f"{where}: {name} must be a number, got {value!r}")
    if low > high:
        raise InputError(f"{where}: low ({low}) is above high ({high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0, got {low}")
    step = number(spec.get("step"))
    if log and step is not None:
        raise InputError(f"{where}: log and step cannot be combined")
    return Parameter(key, low=low, high=high, log=log, step=step, when=when)


def parse_parameter(key: str, spec: Any, source: str) -> list[Parameter]:
    """One entry of ``parameters:``: one Parameter, or a class choice and its classes' own."""
    where = f"{source}: parameters.{key}"
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}")
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        known = "low, high, log, step, choices"
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)} ({known})")
    if "choices" not in spec:
        return [parse_range(key, spec, where)]
    choices = spec["choices"]
    if isinstance(choices, dict) and key.endswith(".class_path"):
        return per_class_space(key, choices, where)
    if not isinstance(choices, list) or not choices:
        raise InputError(f"{where}: choices must be a non-empty list")
    return [Parameter(key, choices=tuple(number(choice) for choice in choices))]


def per_class_space(key: str, choices: dict, where: str) -> list[Parameter]:
    """``class_path: {choices: {ClassA: {arg: range}, ClassB: {...}}}``: the class choice, and
    each class's init_args searched in the trials that chose it."""
    if not choices:
        raise InputError(f"{where}: choices must name at least one class")
    prefix = key.removesuffix(".class_path")
    parameters = [Parameter(key, choices=tuple(str(name) for name in choices))]
    for class_path, arguments in choices.items():
        if arguments is None:
            continue
        if not isinstance(arguments, dict):
            raise InputError(
                f"{where}.choices.{class_path}: expected its init_args to search, e.g. "
                "{lr: {low: 1.0e-4, high: 1.0e-2, log: true}}, or nothing"
            )
        for argument, argument_spec in arguments.items():
            here = f"{where}.choices.{class_path}.{argument}"
            if not isinstance(argument_spec, dict):
                raise InputError(f"{here}: expected {{low: .., high: ..}} or {{choices: [..]}}")
            sub_key = f"{prefix}.init_args.{argument}"
            if "choices" in argument_spec:
                values = argument_spec["choices"]
                if not isinstance(values, list) or not values:
                    raise InputError(f"{here}: choices must be a non-empty list")
                parameter = Parameter(
                    sub_key, choices=tuple(number(v) for v in values), when=str(class_path)
                )
            else:
                parameter = parse_range(sub_key, argument_spec, here, when=str(class_path))
            parameters.append(parameter)
    return parameters


def named_settings(raw: Any, default: str, known: tuple[str, ...], what: str, path) -> dict:
    """``sampler: random`` or ``sampler: {name: tpe, n_startup_trials: 5}`` -> a dict with name."""
    settings = {"name": raw} if isinstance(raw, str) else dict(raw or {"name": default})
    if settings.get("name") not in known:
        name = settings.get("name")
        raise InputError(f"{path}: {what} {name!r} is not one of {', '.join(known)}")
    return settings


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
    sampler = named_settings(raw.get("sampler", "tpe"), "tpe", SAMPLERS, "sampler", path)
    pruner = named_settings(raw.get("pruner", "median"), "none", PRUNERS, "pruner", path)
    parameters = tuple(
        parameter
        for key, spec in raw["parameters"].items()
        for parameter in parse_parameter(str(key), spec, str(path))
    )
    metric = str(raw.get("metric", "val/acc"))
    spec = SweepSpec(parameters, metric, direction, sampler, pruner, str(path))
    make_sampler(spec, 0)  # its arguments, checked now: one line, not a traceback at trial 0
    make_pruner(spec)
    return spec


def check_keys(spec: SweepSpec, config) -> None:
    """Every searched key (of a per-class space: checked by checks.py with its class) must
    exist in the parsed config (a jsonargparse Namespace): a typo would otherwise be searched
    for hours and change nothing."""
    for parameter in spec.parameters:
        if parameter.when is None and parameter.key not in config:
            raise InputError(
                f"{spec.source}: parameters.{parameter.key} is not a key of the config "
                "(see: python -m project fit --config ... --print_config)"
            )


def construct(what: str, cls, settings: dict, source: str, **fixed):
    """``cls(**settings, **fixed)``, with a wrong argument as one line that lists the right ones."""
    parameters = inspect.signature(cls).parameters
    for name in settings:
        if name in fixed:
            raise InputError(f"{source}: {what}: {name} is not set here (--{name} sets it)")
        if name not in parameters:
            takes = ", ".join(p for p in parameters if p not in fixed and p != "self")
            raise InputError(
                f"{source}: {what}: unknown argument {name!r} ({cls.__name__} takes: {takes})"
            )
    try:
        return cls(**settings, **fixed)
    except (TypeError, ValueError) as error:
        raise InputError(f"{source}: {what}: {str(error).splitlines()[0]}") from None


def make_sampler(spec: SweepSpec, seed: int | None):
    import optuna

    settings = {key: value for key, value in spec.sampler.items() if key != "name"}
    cls = optuna.samplers.RandomSampler if spec.sampler["name"] == "random" else None
    cls = cls or optuna.samplers.TPESampler
    return construct(f"sampler {spec.sampler['name']}", cls, settings, spec.source, seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna

    classes = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "threshold": optuna.pruners.ThresholdPruner,  # e.g. lower: 0.3: val/acc below 0.3 stops
        "none": optuna.pruners.NopPruner,
    }
    settings = {key: value for key, value in spec.pruner.items() if key != "name"}
    name = spec.pruner["name"]
    return construct(f"pruner {name}", classes[name], settings, spec.source)
