"""What a sweep leaves in its folder, written after the trials (and again on every re-run):

trials.csv       one row per trial: number, state, value, seconds, retry_of, reason, every parameter
best.yaml        the best trial's values as a config: add it as one more --config
history.png      every trial's value and the best so far (Optuna's optimization history)
importance.png   which parameters mattered (Optuna's fANOVA importances), from 2 completed trials;
importance.csv   the same numbers, with each parameter's full key
trials/          every trial's TensorBoard run (trial_000, ...): the HPARAMS tab compares them
samplers/        each seed's sampler as the last trial left it (a re-run continues from it)

tensorboard --logdir lightning_logs/sweeps/cnn/trials
python -m project fit --config configs/cnn.yaml --config lightning_logs/sweeps/cnn/best.yaml
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from project.sweep.space import SweepSpec

KILLED = "its process died (no heartbeat)"


def trial_rows(study: optuna.Study, spec: SweepSpec) -> list[dict]:
    parameters = spec.ordered()
    rows = []
    for trial in study.get_trials(deepcopy=False):
        history = RetryHeartbeatStaleTrialCallback.retry_history(trial)
        reason = trial.user_attrs.get("reason", "")
        if trial.state == TrialState.FAIL and not reason:
            reason = KILLED  # every other way a trial fails records its reason
        row = {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "value": "" if trial.value is None else f"{trial.value:.4f}",
            "seconds": trial.user_attrs.get("seconds", ""),
            "retry_of": history[-1] if history else "",
            "reason": reason,
        }
        row.update({p.name: trial.params.get(p.name, "") for p in parameters})
        rows.append(row)
    return rows


def write_table(rows: list[dict], path: Path, spec: SweepSpec) -> str:
    """trials.csv, and the same table as text for the terminal (short parameter names)."""
    if not rows:
        return "no trials yet"
    names = list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    labels = {p.name: p.label for p in spec.parameters}
    shown = [{name: short(row[name]) for name in names} for row in rows]
    headers = {name: labels.get(name, name) for name in names}  # lr, dropout, lr[SGD], ...
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
    by_name = spec.by_name()
    ordered = sorted(best.params, key=lambda n: [p.name for p in spec.ordered()].index(n))
    values = {by_name[name].key: best.params[name] for name in ordered if name in by_name}
    path.write_text(header + yaml.safe_dump(nested(values), sort_keys=False), encoding="utf-8")
    return best


# ---------------------------------------------------------------------------- plots


def history_figure(study: optuna.Study, spec: SweepSpec):
    """Optuna's optimization history, with whole trial numbers on its x axis."""
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as plots

    with warnings.catch_warnings():  # "no artists with labels"; experimental
        warnings.simplefilter("ignore")
        axes = plots.plot_optimization_history(study, target_name=spec.metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.figure.set_size_inches(7, 4.5)
    axes.figure.tight_layout()
    return axes.figure


def importances(study: optuna.Study, spec: SweepSpec) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) over the completed trials, by Optuna name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(study)


def importance_figure(values: dict[str, float], spec: SweepSpec, completed: int):
    """Horizontal bars, most important on top, labelled with short names (lr, dropout)."""
    import matplotlib.pyplot as plt

    labels = {p.name: p.label for p in spec.parameters}
    names = list(values)[::-1]
    figure, axes = plt.subplots(figsize=(7, 1.2 + 0.45 * len(names)))
    axes.barh([labels.get(n, n) for n in names], [values[n] for n in names], color="tab:blue")
    for y, name in enumerate(names):
        axes.text(values[name], y, f" {values[name]:.2f}", va="center", fontsize=9)
    axes.set_xlim(0, max(1.0, *values.values()) * 1.15)
    axes.set_xlabel(f"importance for {spec.metric} (fANOVA; the bars sum to 1)")
    axes.set_title(f"Parameter importance over {completed} completed trials")
    figure.tight_layout()
    return figure


def write_plots(study: optuna.Study, spec: SweepSpec, folder: Path) -> list[str]:
    """history.png, importance.png and importance.csv; one line for each that is not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notes = []
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if completed:
        figure = history_figure(study, spec)
        figure.savefig(folder / "history.png", dpi=100)
        plt.close(figure)
    else:
        notes.append("history.png not drawn: no trial has completed")
    if len(completed) < 2:
        notes.append(
            f"importance.png not drawn: it needs 2 completed trials, the study has {len(completed)}"
        )
        return notes
    try:
        values = importances(study, spec)
    except (RuntimeError, ValueError) as error:  # e.g. every parameter the same in every trial
        return [*notes, f"importance.png not drawn: {str(error).splitlines()[0]}"]
    if not values:
        return [*notes, "importance.png not drawn: no parameter is in every completed trial"]
    by_name = spec.by_name()
    with open(folder / "importance.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["parameter", "key", "importance"])
        for name, value in values.items():
            writer.writerow(
                [by_name[name].label if name in by_name else name, name, f"{value:.4f}"]
            )
    figure = importance_figure(values, spec, len(completed))
    figure.savefig(folder / "importance.png", dpi=100)
    plt.close(figure)
    return notes


# ---------------------------------------------------------------------------- the end of a run


def finish(study, spec: SweepSpec, folder: Path, config_args: list[str], signal_name, ended):
    """Write the table, best.yaml and the plots of what the study holds, say how the run
    ended, and return the exit status (project/sweep/cli.py lists them)."""
    from project.sweep.study import most_common_reason, numbers, progress

    print(write_table(trial_rows(study, spec), folder / "trials.csv", spec))
    best = write_best(study, spec, folder / "best.yaml", config_args)
    for note in write_plots(study, spec, folder):
        print(note)
    if best is not None:
        print(
            f"best: trial {best.number}, {spec.metric} {best.value:.4f}; "
            f"{folder / 'best.yaml'} (add it as one more --config)"
        )
    now = progress(study)
    if signal_name:
        stopped = numbers(t.number for t in now.stopped) or "none"
        print(
            f"stopped by {signal_name}: trial(s) {stopped} stopped; the same command runs them "
            "again first, then the rest",
            file=sys.stderr,
        )
        return 130 if signal_name == "SIGINT" else 143
    if ended:
        for end in ended:
            print(
                f"error: worker {end.name} (pid {end.pid}) {end.describe()}; the others finished "
                "their trials; the same command runs its trial again",
                file=sys.stderr,
            )
        return 1
    ran = [t for t in now.finished if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if now.finished and not ran:
        reason, times = most_common_reason(now.finished)
        print(
            f"error: all {len(now.finished)} trials failed; the most common reason "
            f"({times} of {len(now.finished)}): {reason}",
            file=sys.stderr,
        )
        return 1
    return 0
