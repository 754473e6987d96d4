"""Framework overhead: epoch time of the Lightning loop against the manual loop, same config.

    python -m benchmarks.framework_overhead

Both loops train configs/cnn.yaml in fp32 in this process, alternately (Lightning, manual,
Lightning, ...), EPOCHS epochs per run, and report the median of time/epoch_seconds (an epoch with
its validation) over all runs, epoch 0 excluded (warm-up). Goal: Lightning / manual <= 1.03.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import interleaved, ratio, spread, table
from project.cli import main as lightning_main
from project.manual.__main__ import run as manual_run
from project.plot import read_scalars

EPOCHS, REPEATS = 4, 3


def arguments(log_dir: str) -> list[str]:
    return [
        "--config", "configs/cnn.yaml",
        "--trainer.precision=32-true",
        f"--trainer.max_epochs={EPOCHS}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]  # fmt: skip


def main() -> dict:
    folder = tempfile.mkdtemp(prefix="bench_overhead_")
    epochs: dict[str, list[float]] = {"lightning": [], "manual": []}
    steps = {}

    def lightning() -> float:
        cli = lightning_main(["fit", *arguments(folder)])
        times = read_scalars(Path(cli.trainer.log_dir))["time/epoch_seconds"][1][1:]
        epochs["lightning"] += times
        steps["per_epoch"] = cli.trainer.num_training_batches
        return 0.0

    def manual() -> float:
        result = manual_run(["fit", *arguments(folder)])
        epochs["manual"] += [e["time/epoch_seconds"] for e in result.history.epochs][1:]
        return 0.0

    interleaved({"lightning": lightning, "manual": manual}, REPEATS)
    overhead = ratio(epochs["lightning"], epochs["manual"])
    per_step_ms = (
        (sorted(epochs["lightning"])[len(epochs["lightning"]) // 2]
         - sorted(epochs["manual"])[len(epochs["manual"]) // 2]) / steps["per_epoch"] * 1000
    )  # fmt: skip
    table(
        f"1. Framework overhead (configs/cnn.yaml, fp32, {REPEATS} interleaved runs x "
        f"{EPOCHS - 1} timed epochs each, {steps['per_epoch']} steps/epoch)",
        ["loop", "epoch s, median (min-max)"],
        [[name, spread(values, " s", 3)] for name, values in epochs.items()],
    )
    print(f"Lightning / manual = {overhead:.3f} (goal <= 1.03); "
          f"per-step overhead {per_step_ms:+.2f} ms")  # fmt: skip
    return {"ratio": overhead, "per_step_ms": per_step_ms}


if __name__ == "__main__":
    main()
