"""Alias module: the Lightning callbacks live in project/lit/callbacks.py.

Configs and run folders' ``config.yaml`` written before the move name
``project.callbacks.PredictionWriter`` and the like; this module keeps those names loading
(tests/test_layout.py checks that each name here *is* the class in project/lit/). Re-exports only.
"""

from project.lit.callbacks import (  # noqa: F401
    CheckpointOnInterrupt,
    EpochTimer,
    HyperparametersWithMetrics,
    PredictionWriter,
    ThrottledProgressBar,
    ValidationFigures,
)

__all__ = [
    "CheckpointOnInterrupt",
    "EpochTimer",
    "HyperparametersWithMetrics",
    "PredictionWriter",
    "ThrottledProgressBar",
    "ValidationFigures",
]
