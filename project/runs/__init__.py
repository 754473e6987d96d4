"""What a run leaves behind, in plain PyTorch (both loops write it the same way):

- checkpoints.py         checkpoint files: written atomically, read safely (weights_only)
- folders.py             where a run's logs and checkpoints go (lightning_logs/NAME/version_N)
- tensorboard_images.py  the confusion matrix and the grid of predicted images
- tensorboard_extras.py  the HPARAMS tab, validation pictures and top losses for TensorBoard
- curves.py              training curves drawn to a PNG from the event files
- test_report.py         the test report (per-class table, confusion matrix) next to the run
"""
