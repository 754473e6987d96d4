"""The workshop's exercises: TODO files (NN_name.py), checkers (checks/), solutions (solutions/).

Check your attempt with ``make exercise N=1`` or ``python -m exercises.check 1``; see WORKSHOP.md.
"""
