"""Data pipeline: image files -> Dataset -> ImageData (pipeline.py, plain PyTorch) -> loaders;
ImageDataModule (datamodule.py) is its Lightning adapter."""
