"""What a sweep buys on the digits, and what a second worker buys on this machine.

    python -m benchmarks.sweep                       # 20 trials of 5 epochs, 1 then 2 workers
    python -m benchmarks.sweep --trials 8 --epochs 3 # shorter

Runs ``python -m project sweep`` (configs/sweeps/cnn.yaml over configs/cnn.yaml, each trial
``--trainer.max_epochs EPOCHS``) with 1 worker and again, on a new study, with 2; then fits the
default config and the best trial's best.yaml for the same epochs and tests each best checkpoint.
Prints the best trial's val/acc and test accuracy beside the default config's, the share of
trials pruned, and each sweep's wall time. One run each: a sweep is minutes, not repeated here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks.common import quiet, table

CONFIG, SWEEP = "configs/cnn.yaml", "configs/sweeps/cnn.yaml"


def sweep(folder: Path, trials: int, epochs: int, workers: int) -> tuple[float, optuna.Study]:
    from project.sweep.cli import main

    started = time.perf_counter()
    with quiet():
        status = main(["--config", CONFIG, "--sweep", SWEEP, "--trials", str(trials),
                       "--workers", str(workers), "--folder", str(folder),
                       f"--trainer.max_epochs={epochs}"])  # fmt: skip
    assert status == 0, f"the sweep exited with {status}"
    study = optuna.load_study(study_name="cnn", storage=f"sqlite:///{folder / 'study.db'}")
    return time.perf_counter() - started, study


def fit_and_test(configs: list[str], epochs: int, logs: Path) -> tuple[float, float]:
    """Best val/acc of a fit of ``configs`` and the test accuracy of its best checkpoint."""
    from project.lit.cli import main

    args = [a for c in configs for a in ("--config", c)]
    common = [
        f"--trainer.max_epochs={epochs}",
        f"--trainer.logger.init_args.save_dir={logs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    with quiet():
        fitted = main(["fit", *args, *common])
        callback = fitted.trainer.checkpoint_callback
        tested = main(["test", *args, *common, f"--ckpt_path={callback.best_model_path}"])
    return float(callback.best_model_score), float(tested.trainer.callback_metrics["test/acc"])


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    options = parser.parse_args([] if args is None else args)
    rows, studies = [], {}
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        for workers in (1, 2):
            seconds, studies[workers] = sweep(
                root / f"w{workers}", options.trials, options.epochs, workers
            )
            states = [trial.state.name for trial in studies[workers].trials]
            share = states.count("PRUNED") / len(states)
            rows.append([f"sweep, {workers} worker(s)", f"{seconds:.0f} s", f"{share:.0%}",
                         f"{studies[workers].best_value:.4f}", ""])  # fmt: skip
        default_val, default_test = fit_and_test([CONFIG], options.epochs, root / "logs")
        best_val, best_test = fit_and_test(
            [CONFIG, str(root / "w1" / "best.yaml")], options.epochs, root / "logs"
        )
    rows += [
        ["default config", "", "", f"{default_val:.4f}", f"{default_test:.4f}"],
        ["best trial (1 worker), refit", "", "", f"{best_val:.4f}", f"{best_test:.4f}"],
    ]
    table(
        f"Sweep: {options.trials} trials of {options.epochs} epochs on the digits "
        f"({SWEEP}, TPE, median pruner)",
        ["run", "wall time", "pruned", "best val/acc", "test acc"],
        rows,
    )
    print(f"best trial's values (1 worker): {studies[1].best_params}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
