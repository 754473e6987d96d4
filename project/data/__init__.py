"""Data pipeline: image files -> Dataset -> LightningDataModule (see datamodule.py)."""
