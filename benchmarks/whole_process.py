"""Lightning against the manual loop as a user runs them: whole processes, interleaved pairs.

    python -m benchmarks.whole_process              # 5 pairs of the default config (25 epochs)
    python -m benchmarks.whole_process --pairs 3 --epochs 10
    python -m benchmarks.whole_process --trees /tmp/before .   # checkouts in turn, e.g. a
        # `git worktree add /tmp/before <commit>` of the tree before a change (its data/ linked)

Each pair runs ``python -m project fit --config configs/cnn.yaml`` and then
``python -m project.manual fit --config configs/cnn.yaml`` in fresh processes (imports, data set-up,
every epoch, checkpoints: everything a user waits for), with the progress bar as configured. The
ratio of each pair is Lightning's wall time over the manual loop's; the table gives the median and
the range of those ratios, so a slow moment of a shared machine lands in one pair, not in one loop.
Goal (issue 15): median ratio <= 1.05.

Where each process's time goes, from its TensorBoard events: "to epoch 0's end" (interpreter,
imports, set-up and the first epoch), "per epoch" after that (training and validation), and "exit"
(the last epoch's event to the process's end: saving, closing, the interpreter's exit).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

from benchmarks.common import fresh_fit, interleaved, spread, table

LOOPS = {"Lightning": "project", "manual": "project.manual"}


def one_process(loop: str, epochs: int, cwd: Path | None = None) -> dict[str, float]:
    """One fresh process of ``loop`` on the default config: its wall time and where it went."""
    run = fresh_fit(LOOPS[loop], [f"--trainer.max_epochs={epochs}"], cwd)
    epoch_ends = [event.wall_time for event in run.val_acc]
    return {
        "wall": run.ended - run.started,
        "to epoch 0's end": epoch_ends[0] - run.started,
        "per epoch": (epoch_ends[-1] - epoch_ends[0]) / max(1, len(epoch_ends) - 1),
        "exit": run.ended - epoch_ends[-1],
    }


def pairs(count: int, epochs: int, trees: list[Path | None]) -> dict:
    """``count`` rounds; in each, every tree runs Lightning then the manual loop (interleaved)."""
    processes = {
        (tree, loop): functools.partial(one_process, loop, epochs, tree)
        for tree in trees
        for loop in LOOPS
    }
    results = interleaved(processes, count)
    return {tree: {loop: results[tree, loop] for loop in LOOPS} for tree in trees}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--trees", nargs="+", type=Path, default=None, help="checkouts in turn")
    options = parser.parse_args(argv if argv is not None else [])
    trees = [tree.resolve() for tree in options.trees] if options.trees else [None]
    all_runs = pairs(options.pairs, options.epochs, trees)
    results = {}
    for tree, runs in all_runs.items():
        times = {loop: [run["wall"] for run in loop_runs] for loop, loop_runs in runs.items()}
        ratios = [lit / man for lit, man in zip(times["Lightning"], times["manual"], strict=True)]
        parts = ["to epoch 0's end", "per epoch", "exit"]
        table(
            f"11. Whole process{f' ({tree})' if tree else ''}, configs/cnn.yaml ({options.epochs} "
            f"epochs, precision auto), {options.pairs} interleaved pairs (goal: Lightning / manual"
            " <= 1.05)",
            ["loop", "wall time median (min-max)", *parts],
            [
                [loop, spread(times[loop], " s", 1)]
                + [f"{statistics.median(run[part] for run in loop_runs):.2f} s" for part in parts]
                for loop, loop_runs in runs.items()
            ]
            + [["ratio Lightning / manual, per pair", spread(ratios, "", 3), "", "", ""]],
        )
        median = statistics.median(ratios)
        results[tree] = {"times": times, "ratio_median": median, "ratios": ratios}
    return results  # by tree; None: this checkout


if __name__ == "__main__":
    main(sys.argv[1:])
