"""Benchmarks of the project (make bench; benchmarks/README.md).

Importing the project first applies its CPU thread rule (project/core/threads.py) before any
benchmark loads torch; benchmarks/busy_machine.py sets the environment of each run itself.
"""

import project  # noqa: F401
