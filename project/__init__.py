"""A PyTorch Lightning template for image classification. Start with ``make train``."""
