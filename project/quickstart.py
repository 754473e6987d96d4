"""``make train``: fit a config, then test its best checkpoint, and say where everything went.

    python -m project.quickstart --config configs/cnn.yaml [more LightningCLI options]

The same as running ``python -m project fit --config ...`` and then
``python -m project test --config ... --ckpt_path <best checkpoint>`` by hand.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from project.core.gc_pause import paused_for_imports, skip_collection_at_exit


def fit_then_test(args: list[str]) -> dict[str, float]:
    from project.core.loss import loss_floor
    from project.lit.cli import (
        main,  # here, not at the top: as a command it is loaded below, paused
    )

    start = time.perf_counter()
    cli = main(["fit", *args])
    fit_seconds = time.perf_counter() - start
    trainer = cli.trainer
    best = trainer.checkpoint_callback.best_model_path
    # Test the best epoch's weights (not the last epoch's), read back from the file on disk.
    results = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, weights_only=True)
    test_acc = results[0]["test/acc"]
    print()
    print(f"fit took {fit_seconds:.1f} s (imports excluded) over {trainer.current_epoch} epochs")
    print(f"best checkpoint:  {best}")
    print(f"last checkpoint:  {Path(best).with_name('last.ckpt')}   (resume: --ckpt_path)")
    print(f"TensorBoard logs: {trainer.log_dir}   (view: tensorboard --logdir lightning_logs)")
    print(f"test accuracy:    {test_acc:.4f}")
    recipe = getattr(cli.model, "recipe", None)
    smoothing = getattr(recipe, "label_smoothing", 0.0)
    if smoothing > 0:  # why the loss stays far above 0 at a near-perfect accuracy
        floor = loss_floor(recipe.num_classes, smoothing)
        print(
            f"the losses include label smoothing {smoothing}: a perfect model's loss is "
            f"{floor:.3f} here, not 0 (loss_floor in project/core/loss.py)"
        )
    return results[0]


if __name__ == "__main__":
    with paused_for_imports():  # torch, Lightning, ...: about 0.9 s less (project/core/gc_pause.py)
        import project.lit.cli  # noqa: F401  (fit_then_test's import then finds it loaded)
    # The options go to the CLI as its args; left in sys.argv too, Lightning would warn that it
    # got both (a warning meant for scripts that mix the two by mistake).
    options, sys.argv[1:] = sys.argv[1:], []
    try:
        fit_then_test(options)
    finally:  # a command line's exit: about 1 s less (project/core/gc_pause.py)
        skip_collection_at_exit()
