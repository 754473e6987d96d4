"""Pictures for TensorBoard: a confusion matrix and a grid of images with predicted and true labels.

Both training loops log them at every validation end, under ``val/confusion_matrix`` and
``val/predictions`` (TensorBoard's IMAGES tab). They are drawn with PIL into uint8 H x W x 3 arrays:
a few milliseconds per epoch, where matplotlib figures would add seconds to a 25-epoch run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

CELL = 28  # confusion-matrix cell, pixels
TILE = 96  # prediction-grid tile, pixels: an 8 px digit becomes 90 px (TensorBoard shows 1:1)
FONT_SIZE, LINE = 14, 17  # caption font (Pillow's built-in scalable font) and line height
RIGHT, WRONG = (40, 170, 60), (220, 50, 50)


def confusion_matrix_image(counts: torch.Tensor, class_names: Sequence[str]) -> np.ndarray:
    """The matrix as a picture: blue intensity = share of the true class, the count written in."""
    classes = len(class_names)
    margin = CELL + 8 * max(len(str(n)) for n in class_names)
    size = margin + classes * CELL
    image = Image.new("RGB", (size, size + 14), "white")
    draw = ImageDraw.Draw(image)
    shares = counts.float() / counts.sum(dim=1, keepdim=True).clamp(min=1)
    for true in range(classes):
        for predicted in range(classes):
            share = shares[true, predicted].item()
            shade = int(255 * (1 - share))
            x, y = margin + predicted * CELL, margin + true * CELL
            draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=(shade, shade, 255))
            count = int(counts[true, predicted])
            if count:
                draw.text((x + 3, y + 8), str(count), fill="white" if share > 0.5 else "black")
    for index, name in enumerate(class_names):
        draw.text((margin + index * CELL + 4, margin - 14), str(name)[:4], fill="black")
        draw.text((4, margin + index * CELL + 8), str(name), fill="black")
    draw.text((margin, size + 1), "rows: true class, columns: predicted", fill="black")
    return np.asarray(image)


def prediction_grid_image(
    images: torch.Tensor,
    predicted: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    columns: int = 8,
    probabilities: torch.Tensor | None = None,
) -> np.ndarray:
    """Normalized N x 3 x H x W images as tiles framed green (right) or red (wrong), captioned
    "predicted / true" and, given ``probabilities``, the model's probability of its prediction.
    Tiles are upscaled to TILE pixels (nearest: the pixels stay visible) and the captions use a
    FONT_SIZE font, so both read at TensorBoard's default image size."""
    pixels = images.float().cpu() * torch.tensor(std).view(1, -1, 1, 1)
    pixels = pixels + torch.tensor(mean).view(1, -1, 1, 1)  # undo the normalization
    pixels = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    columns = max(1, min(columns, len(pixels)))
    rows = (len(pixels) + columns - 1) // columns
    height = TILE + 2 * LINE
    grid = Image.new("RGB", (columns * TILE, max(rows, 1) * height), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=FONT_SIZE)
    for index, tile in enumerate(pixels):
        x, y = (index % columns) * TILE, (index // columns) * height
        picture = Image.fromarray(tile).resize((TILE - 6, TILE - 6), Image.Resampling.NEAREST)
        right = int(predicted[index]) == int(labels[index])
        draw.rectangle([x, y, x + TILE - 1, y + TILE - 1], fill=RIGHT if right else WRONG)
        grid.paste(picture, (x + 3, y + 3))
        caption = f"{class_names[int(predicted[index])]} / {class_names[int(labels[index])]}"
        draw.text((x + 3, y + TILE), caption[:14], fill="black", font=font)
        if probabilities is not None:
            draw.text((x + 3, y + TILE + LINE), f"p={float(probabilities[index]):.2f}", font=font,
                      fill="black")  # fmt: skip
    return np.asarray(grid)
