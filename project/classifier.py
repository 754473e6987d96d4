"""Alias module: the LightningModules live in project/lit/classifier.py.

Configs, run folders' ``config.yaml`` and checkpoints written before the move name
``project.classifier.CNNClassifier`` and the like; this module keeps those names loading
(tests/test_layout.py checks that each name here *is* the class in project/lit/). New configs name
``project.lit.classifier``. Re-exports only: nothing is defined here.
"""

from project.lit.classifier import (  # noqa: F401
    ClassifierModule,
    CNNClassifier,
    ImageClassifier,
    ResNetClassifier,
)

__all__ = ["ClassifierModule", "CNNClassifier", "ImageClassifier", "ResNetClassifier"]
