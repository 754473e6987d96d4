"""Before the first trial: every value the sweep can draw, and its metric, checked against the
config itself, so that a bad value is one line and exit status 2 instead of 20 failed trials.

- ``check_values``: each range's ends and each choice are given to the config's own parser
  (project/lit/cli.py, as ``fit`` parses), a few at a time; a refusal names the key, the value and
  the parser's reason ("Expected a float"). A per-class space is checked class by class.
- ``check_metric``: a 1-batch run of the config (Lightning's ``fast_dev_run``: one training and
  one validation batch, nothing logged or saved) lists the metrics a validation ends with; the
  sweep's ``metric`` must be one of them.

Lightning is imported by these functions, not by the module (the sweep's command needs it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from typing import Any

from project.core.errors import InputError
from project.sweep.space import Parameter, SweepSpec, class_key


def probe_rounds(spec: SweepSpec) -> list[list[tuple[Parameter, Any]]]:
    """Assignments (parameter, value) that together give every probe value of every parameter
    at least once: round r gives each its r-th value (or its last), the class of a per-class
    space its r-th class with that class's own parameters; any value left out gets a round of
    its own, with its class."""
    plain = [p for p in spec.ordered() if p.when is None]
    conditional = [p for p in spec.parameters if p.when is not None]
    count = max(len(p.probe_values) for p in plain) if plain else 1
    rounds, covered = [], set()
    for r in range(count):
        chosen = [(p, p.probe_values[min(r, len(p.probe_values) - 1)]) for p in plain]
        classes = {p.key: value for p, value in chosen}
        for p in conditional:
            if classes.get(class_key(p)) == p.when:
                chosen.append((p, p.probe_values[min(r, len(p.probe_values) - 1)]))
        covered |= {(p.name, repr(value)) for p, value in chosen}
        rounds.append(chosen)
    for p in conditional:
        for value in p.probe_values:
            if (p.name, repr(value)) not in covered:
                base = [(q, q.probe_values[0]) for q in plain if q.key != class_key(p)]
                owner = next(q for q in plain if q.key == class_key(p))
                rounds.append([(owner, p.when), *base, (p, value)])
                covered.add((p.name, repr(value)))
    return rounds


def overrides(assignment: list[tuple[Parameter, Any]]) -> list[str]:
    def order(pair):  # as SweepSpec.ordered: class paths, other keys, per-class parameters
        return pair[0].when is not None, not pair[0].key.endswith("class_path")

    ordered = sorted(assignment, key=order)
    return [f"--{p.key}={value}" for p, value in ordered]


def describe(spec: SweepSpec, parameter: Parameter, value: Any) -> str:
    which = "choice" if parameter.choices else ("low" if value == parameter.low else "high")
    return f"{spec.source}: parameters.{parameter.name}: {which} {value!r}"


def check_values(spec: SweepSpec, config_args: list[str]) -> None:
    """Every probe value parses with the config, or one InputError naming the first that does
    not, with the parser's own reason."""
    from project.sweep.trial import ConfigRefused, lightning

    for assignment in probe_rounds(spec):
        try:
            lightning([*config_args, *overrides(assignment)], build=False)
            continue
        except ConfigRefused as together:
            refused = together
        # Which one: each value alone (with its class, for a per-class parameter).
        for parameter, value in assignment:
            alone = [(parameter, value)]
            if parameter.when is not None:
                owner = next(p for p, _ in assignment if p.key == class_key(parameter))
                alone.insert(0, (owner, parameter.when))
            try:
                lightning([*config_args, *overrides(alone)], build=False)
            except ConfigRefused as error:
                raise InputError(
                    f"{describe(spec, parameter, value)} is refused by the config: {error}"
                    f"{hint(parameter, str(error))}"
                ) from None
        values = ", ".join(f"{p.name}={v!r}" for p, v in assignment)
        raise InputError(f"{spec.source}: the values {values} together are refused: {refused}")


def hint(parameter: Parameter, reason: str) -> str:
    if parameter.kind == "float" and reason == "Expected an int":
        return " (an int key: write its range in integers, e.g. {low: 16, high: 128})"
    return ""


def check_metric(spec: SweepSpec, config_args: list[str]) -> None:
    """A 1-batch run of the config: the sweep's metric must be among those a validation ends
    with (what ReportToTrial reads), or one InputError listing them."""
    from project.sweep.trial import QUIET, ConfigRefused, MetricNames, lightning

    with tempfile.TemporaryDirectory(prefix="sweep_metric_check_") as logs:
        args = [*config_args, "--trainer.fast_dev_run=1",
                f"--trainer.logger.init_args.save_dir={logs}", *QUIET]  # fmt: skip
        with quiet_lightning():
            try:
                cli = lightning(args)
            except ConfigRefused as error:
                raise InputError(f"the config is refused: {error}") from None
            names = MetricNames()
            cli.trainer.callbacks.append(names)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if spec.metric not in names.names:
        logged = ", ".join(sorted(n for n in names.names if "/" in n)) or "none"
        raise InputError(
            f"{spec.source}: metric {spec.metric!r} is not logged at validation by this config "
            f"(a 1-batch run logged: {logged})"
        )


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's start-up lines and warnings, hidden for the 1-batch check."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
