"""Hyperparameter sweeps with Optuna over the same configs as ``python -m project fit``.

    python -m project sweep --config configs/cnn.yaml --sweep configs/sweeps/cnn.yaml --trials 20
    python -m project sweep ... --workers 2                 # two processes share the study
    python -m project sweep ... --storage postgresql://user@host/db --study cnn   # a cluster

space.py    the sweep file: config keys, their ranges or choices, metric, sampler, pruner
trial.py    one trial: a real fit through project/lit/cli.py with the trial's values as overrides,
            val metrics reported to Optuna every validation, a pruned trial stopped at once
study.py    the study on its storage (SQLite under the run folder by default), the workers
report.py   after the trials: the table (printed and trials.csv), best.yaml, the plots
cli.py      the command line (``main``)

docs/sweeps.md says how to run a sweep and how to read it.
"""
