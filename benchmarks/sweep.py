"""What a sweep buys on the digits, and what a second worker buys on this machine.

    python -m benchmarks.sweep                       # 20 trials of 5 epochs, 1 then 2 workers
    python -m benchmarks.sweep --trials 8 --epochs 3 # shorter
    python -m benchmarks.sweep --interruptions       # Ctrl-C, kill -9, a killed worker: resumed?
    python -m benchmarks.sweep --interruptions --repo /tmp/before   # the same on another checkout

Runs ``python -m project sweep`` (configs/sweeps/cnn.yaml over configs/cnn.yaml, each trial
``--trainer.max_epochs EPOCHS``) with 1 worker and again, on a new study, with 2; then fits the
default config and the best trial's best.yaml for the same epochs and tests each best checkpoint.
Prints the best trial's val/acc and test accuracy beside the default config's, the share of
trials pruned, and each sweep's wall time. One run each: a sweep is minutes, not repeated here.

``--interruptions`` runs a 6-trial sweep of 2-epoch trials (a random sampler over a learning
rate and a dropout) four times, each interrupted once while its trial 2 runs: Ctrl-C (SIGINT to
the process group) with 1 worker and with 2, ``kill -9`` of the whole process group, and
``kill -9`` of one of 2 workers. Each is followed by the same command, run to its end; the table
gives both exit statuses, the trials that finished (complete or pruned), how many distinct
parameter sets they drew, and the trials left RUNNING. ``--repo`` runs another checkout's
``python -m project sweep`` (its folder is the working directory, so ``-m`` finds its package):
the before/after table of docs/sweeps.md came from this with ``--repo`` at the commit before.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
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


# ---------------------------------------------------------------------------- interruptions

INTERRUPTIONS = {  # name: (workers, what is done to the sweep while its trial 2 runs)
    "Ctrl-C, 1 worker": (1, "SIGINT to the group"),
    "Ctrl-C, 2 workers": (2, "SIGINT to the group"),
    "kill -9, 1 worker": (1, "SIGKILL to the group"),
    "kill -9 of 1 of 2 workers": (2, "SIGKILL to one worker"),
}
SHORT = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=4",
         "--trainer.limit_val_batches=2", "--trainer.precision=32-true"]  # fmt: skip


def wait_until(condition, process: subprocess.Popen, what: str, bound: float = 600.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sweep ended (status {process.returncode}) before {what}")
        time.sleep(0.05)


def study_trials(url: str) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name="sweep", storage=url).get_trials(deepcopy=False)


def worker_pids(pid: int) -> list[int]:
    """The sweep's worker processes: spawned (children), or forked by a forkserver (its children;
    a forked worker shows the forkserver's command line)."""
    import psutil

    found = []
    for child in psutil.Process(pid).children():
        command = " ".join(child.cmdline())
        if "forkserver" in command:
            found += [worker.pid for worker in child.children()]
        elif "spawn_main" in command and "resource_tracker" not in command:
            found.append(child.pid)
    return found


def interrupted_sweep(repo: Path, root: Path, name: str, trials: int) -> list[str]:
    """One case of INTERRUPTIONS: the interrupted run, then the same command to its end."""
    import yaml

    workers, action = INTERRUPTIONS[name]
    folder = root / name.replace(" ", "_").replace(",", "")
    folder.mkdir(parents=True)
    sweep_file = folder / "sweep.yaml"
    space = {"model.init_args.optimizer.init_args.lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
             "model.init_args.dropout": {"low": 0.0, "high": 0.4}}  # fmt: skip
    sweep_file.write_text(yaml.safe_dump({"sampler": "random", "pruner": "none",
                                          "parameters": space}))  # fmt: skip
    command = [sys.executable, "-u", "-m", "project", "sweep", "--config", "configs/cnn.yaml",
               "--sweep", str(sweep_file), "--trials", str(trials), "--workers", str(workers),
               "--folder", str(folder / "out"), f"--data.root={root / 'digits'}",
               *SHORT]  # fmt: skip
    url = f"sqlite:///{folder / 'out' / 'study.db'}"
    log = folder / "first.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=repo, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            wait_until(lambda: "study 'sweep'" in log.read_text(), process, "it opened its study")
            wait_until(
                lambda: any(t.number >= 2 and t.state.name == "RUNNING" for t in study_trials(url)),
                process,
                "its trial 2 ran",
            )
            if action == "SIGKILL to one worker":
                os.kill(worker_pids(process.pid)[-1], signal.SIGKILL)
            else:
                os.killpg(process.pid, getattr(signal, action.split()[0]))
            first = process.wait(timeout=600)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    again = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=1800)
    (folder / "again.log").write_text(again.stdout + again.stderr)
    finished = [t for t in study_trials(url) if t.state.name in ("COMPLETE", "PRUNED")]
    distinct = {tuple(sorted(t.params.items())) for t in finished}
    running = [t for t in study_trials(url) if t.state.name == "RUNNING"]
    return [name, str(first), str(again.returncode), f"{len(finished)} of {trials}",
            str(len(distinct)), str(len(running))]  # fmt: skip


def interruptions(repo: Path, trials: int = 6) -> None:
    from project.data.digits import write_digits

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as root:
        write_digits(Path(root) / "digits")
        for name in INTERRUPTIONS:
            rows.append(interrupted_sweep(repo.resolve(), Path(root), name, trials))
    table(
        f"A {trials}-trial sweep interrupted once while trial 2 runs, then the same command "
        f"({repo.resolve().name})",
        ["interruption", "exit", "re-run exit", "finished", "distinct parameters", "RUNNING left"],
        rows,
    )


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--interruptions", action="store_true", help="the resume table instead")
    parser.add_argument("--repo", default=".", help="with --interruptions: the checkout to run")
    options = parser.parse_args([] if args is None else args)
    if options.interruptions:
        interruptions(Path(options.repo), trials=6)
        return
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
