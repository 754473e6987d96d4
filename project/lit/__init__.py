"""The Lightning twin: the same training as project/manual/, run by Lightning's Trainer.

- classifier.py   the LightningModules: thin adapters around the plain recipe (core/recipe.py)
- datamodule.py   the plain data pipeline (project/data/pipeline.py) as a LightningDataModule
- callbacks.py    prediction writer, epoch timer, checkpoint on interrupt, figures, hparams
- cli.py          LightningCLI: ``python -m project fit|validate|test|predict``
- ddp_unfreeze.py DDP across an unfreeze; lr_find.py the learning-rate range test command
- quiet.py        the litlogger advert and a deprecation meant for Lightning, filtered

Every module of the package that imports Lightning lives here, or is a command of deploy/
or sweep/ that starts a Lightning run on purpose (tests/test_boundary.py).
Not named ``lightning``: that would shadow the library itself.

Importing any module of the package installs quiet.py's two filters first, so a script of
one's own that uses the twin (lessons/05_lightning.py) prints no more than ``python -m project``.
"""

from project.lit.quiet import install as _quiet_lightning

_quiet_lightning()
