"""What a sweep leaves in its folder, written after the trials (and again on every re-run):

trials.csv       one row per trial: number, state, value, seconds, reason, every parameter
best.yaml        the best trial's values as a config: add it as one more --config
history.png      Optuna's optimization history (every trial's value, the best so far)
importance.png   Optuna's parameter importances (fANOVA), once 2+ trials have completed
trials/          every trial's TensorBoard run (trial_000, ...): the HPARAMS tab compares them

tensorboard --logdir lightning_logs/sweeps/cnn/trials
python -m project fit --config configs/cnn.yaml --config lightning_logs/sweeps/cnn/best.yaml
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from project.sweep.space import SweepSpec


def trial_rows(study: optuna.Study, spec: SweepSpec) -> list[dict]:
    keys = [parameter.key for parameter in spec.parameters]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row = {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "value": "" if trial.value is None else f"{trial.value:.4f}",
            "seconds": trial.user_attrs.get("seconds", ""),
            "reason": trial.user_attrs.get("reason", ""),
        }
        row.update({key: trial.params.get(key, "") for key in keys})
        rows.append(row)
    return rows


def write_table(rows: list[dict], path: Path) -> str:
    """trials.csv, and the same table as text for the terminal."""
    if not rows:
        return "no trials yet"
    names = list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    shown = [{name: short(row[name]) for name in names} for row in rows]
    headers = {name: name.split(".")[-1] for name in names}  # lr, dropout, batch_size, ...
    widths = {name: max(len(headers[name]), *(len(row[name]) for row in shown)) for name in names}
    lines = ["  ".join(headers[name].ljust(widths[name]) for name in names)]
    lines += ["  ".join(row[name].ljust(widths[name]) for name in names) for row in shown]
    return "\n".join(line.rstrip() for line in lines)


def short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def nested(values: dict) -> dict:
    """{"model.init_args.dropout": 0.2} -> {"model": {"init_args": {"dropout": 0.2}}}."""
    tree: dict = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def write_best(
    study: optuna.Study, spec: SweepSpec, path: Path, base: list[str]
) -> optuna.trial.FrozenTrial | None:
    """best.yaml: the best completed trial's values, nested as a config file. ``base``: the
    sweep's own config arguments, which the best values go on top of."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        return None
    best = study.best_trial
    header = (
        f"# The best trial of study '{study.study_name}': trial {best.number}, "
        f"{spec.metric} {best.value:.4f} ({spec.direction}).\n"
        "# Use it on top of the sweep's base config:\n"
        f"#   python -m project fit {' '.join(base)} --config {path}\n"
    )
    path.write_text(header + yaml.safe_dump(nested(best.params), sort_keys=False), encoding="utf-8")
    return best


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    """history.png and importance.png; a plot that cannot be drawn yet says why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    notes = []
    for name, draw in (
        ("history", plots.plot_optimization_history),
        ("importance", plots.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():  # "no artists with labels": a legend of one line
                warnings.simplefilter("ignore", UserWarning)
                axes = draw(study)
            axes.figure.tight_layout()
            axes.figure.savefig(folder / f"{name}.png", dpi=100)
            plt.close(axes.figure)
        except Exception as error:  # e.g. importance before two trials have completed
            notes.append(f"{name}.png not drawn: {str(error).splitlines()[0]}")
    return notes
