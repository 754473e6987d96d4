"""The plain-PyTorch core: what both loops train, and how. No Lightning import.

recipe.py (network, loss, MixUp/CutMix, parameter groups and stages, optimizer and schedule),
loss.py, optimizer.py, steps.py, mixing.py, metrics.py, precision.py, threads.py, errors.py,
gc_pause.py, config_defaults.py. The Lightning twin (project/lit/) and the manual twin
(project/manual/) both run this core; tests/test_boundary.py keeps every plain folder
(core, data, models, runs, manual, serve, transfer) free of Lightning, by folder.
"""
