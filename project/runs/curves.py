"""Training curves from a run's TensorBoard event files, drawn to a PNG (no TensorBoard server).

    python -m project.runs.curves lightning_logs/cnn/version_0              # writes .../curves.png
    python -m project.runs.curves lightning_logs/cnn/version_0 lightning_logs/cnn/manual_version_0 \
        --output both.png                                            # overlays several runs

Works for both loops' runs: they log the same tags (train/loss, val/loss, train/acc, val/acc).
"""

from __future__ import annotations

import argparse
from pathlib import Path

CURVES = ("train/loss", "val/loss", "train/acc", "val/acc")

Scalars = dict[str, tuple[list[int], list[float]]]  # tag -> (steps, values)


def read_scalars(run_dir: str | Path) -> Scalars:
    """Every scalar tag of the event files in ``run_dir``, in step order."""
    # Imported here: tensorboard's reader is slow to import and only this function needs it.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = Path(run_dir)
    if not any(run_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"no TensorBoard event files in {run_dir}")
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every point
    events.Reload()
    scalars: Scalars = {}
    for tag in events.Tags()["scalars"]:
        points = sorted(events.Scalars(tag), key=lambda event: event.step)
        scalars[tag] = ([p.step for p in points], [p.value for p in points])
    return scalars


def plot_runs(runs: dict[str, Scalars], output: str | Path, title: str = "") -> Path:
    """One panel per curve in CURVES, one line per run; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for axis, tag in zip(axes.flat, CURVES, strict=True):
        for (label, scalars), style in zip(runs.items(), ("-", "--", ":", "-."), strict=False):
            if tag in scalars:
                steps, values = scalars[tag]
                if tag == "train/acc" and "val/acc" in scalars:
                    # The epochs' values only: the ones between (every log_every_n_steps) are the
                    # epoch's accuracy so far, which starts again at each epoch.
                    ends = set(scalars["val/acc"][0])
                    kept = [i for i, step in enumerate(steps) if step in ends]
                    steps, values = [steps[i] for i in kept], [values[i] for i in kept]
                axis.plot(steps, values, style, label=label, marker="." if len(steps) < 50 else "")
        axis.set_title(tag)
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("optimizer step")
    axes[0][0].legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def main(args: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m project.runs.curves", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders with event files")
    parser.add_argument("--output", type=Path, help="PNG path (default: <first run>/curves.png)")
    options = parser.parse_args(args)
    runs = {str(run_dir): read_scalars(run_dir) for run_dir in options.run_dirs}
    output = plot_runs(runs, options.output or options.run_dirs[0] / "curves.png")
    print(f"wrote {output}")
    return output


if __name__ == "__main__":
    main()
