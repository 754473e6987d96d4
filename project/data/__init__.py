"""Data pipeline, plain PyTorch: image files -> Dataset -> ImageData (pipeline.py) -> loaders.

Its Lightning adapter, ImageDataModule, is project/lit/datamodule.py; check.py is the data check
(``python -m project check``).
"""
