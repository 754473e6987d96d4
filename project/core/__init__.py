"""The plain-PyTorch core's training recipe (project/core/recipe.py): no Lightning import.

What is plain PyTorch and what is Lightning in this package (tests/test_boundary.py keeps it so):

- Lightning adapters: project/cli.py, project/classifier.py, project/callbacks.py,
  project/data/datamodule.py, project/ddp_unfreeze.py, project/lr_find.py, project/data/check.py
  (the ``check`` command builds the DataModule), and the commands that start LightningCLI
  (project/prune.py, project/sweep/cli.py and project/sweep/trial.py).
- Everything else imports no Lightning: the data pipeline (project/data/pipeline.py and its
  parts), the networks (project/models/), the recipe (project/core/recipe.py: loss, MixUp/CutMix,
  parameter groups and stages, optimizer and schedule), the step pieces (project/steps.py), the
  metrics, checkpoints and reports; and the manual loop (project/manual/), built on them only.
"""
