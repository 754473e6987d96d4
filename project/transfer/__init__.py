"""The offline transfer-learning proof and the challenge's data (``make transfer``).

glyphs.py   letters and digits rendered from matplotlib's fonts, as PNG class folders
source.py   the "pretrained" ResNet18: trained on the letters, saved as a .pth weights file
proof.py    the table: frozen / random / pixels / head-first recipe / fine-tuned from random
"""
