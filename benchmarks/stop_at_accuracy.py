"""A callback for benchmarks/time_to_accuracy.py: print timestamps, stop at the target accuracy.

--trainer.callbacks+=benchmarks.stop_at_accuracy.StopAtAccuracy
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback


class StopAtAccuracy(Callback):
    def __init__(self, target: float = 0.99):
        self.target = target

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 0:
            print(f"FIRST_STEP {time.time():.3f}", flush=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        accuracy = trainer.callback_metrics.get("val/acc")
        if not trainer.sanity_checking and accuracy is not None and accuracy >= self.target:
            print(f"REACHED {time.time():.3f} epoch {trainer.current_epoch}", flush=True)
            trainer.should_stop = True
