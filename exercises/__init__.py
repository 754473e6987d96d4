"""The workshop's exercises: TODO files (NN_name.py), checkers (checks/), solutions (solutions/).

Check your attempt with ``make exercise N=1`` or ``python -m exercises.check 1``; see WORKSHOP.md.
"""

# The CPU thread rule (project/core/threads.py) before any checker loads torch.
import project  # noqa: E402, F401
