"""What Lightning prints that a learner cannot act on, filtered at the narrowest place.

Installed by project/lit/__init__.py, so every command and script that uses the Lightning twin
has it (python -m project, lessons/05_lightning.py). Two lines:

- The litlogger advert (``💡 Tip: For seamless cloud logging ... Lightning Experiments
  platform``), printed by every ``Trainer`` whose loggers hold no LitLogger
  (lightning/pytorch/trainer/connectors/logger_connector/logger_connector.py). Lightning has no
  switch for it; a logging filter on the logger it goes through drops that one message.
- torch's FutureWarning ``isinstance(treespec, LeafSpec) is deprecated``, raised where
  lightning/pytorch/utilities/_pytree.py builds a ``LeafSpec()``: a warning for Lightning's
  developers, ignored for that message from that module only.

Everything else Lightning prints stays. tests/test_quiet.py runs ``fit`` and fails if either line
appears, and fails when upstream no longer prints them, so these filters can then be removed.
"""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.utilities.rank_zero import rank_zero_module

ADVERT_START = "💡 Tip: For seamless cloud logging"
PYTREE_MESSAGE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
PYTREE_MODULE = r"lightning\.pytorch\.utilities\._pytree"


class DropAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERT_START)


def install() -> None:
    """Install both filters (idempotent)."""
    logger = rank_zero_module.log  # the logger rank_zero_info writes to
    if not any(isinstance(f, DropAdvert) for f in logger.filters):
        logger.addFilter(DropAdvert())
    warnings.filterwarnings(
        "ignore", message=PYTREE_MESSAGE, category=FutureWarning, module=PYTREE_MODULE
    )
