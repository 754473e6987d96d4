"""Time to accuracy: seconds from process start to 99% validation accuracy on the bundled digits.

    python -m benchmarks.time_to_accuracy

``python -m project fit --config configs/cnn.yaml`` (the default, precision auto) in a fresh
process, stopped by benchmarks/stop_at_accuracy.py when val/acc >= 0.99; measured from just before
the process starts. Peers on the same split: scikit-learn's SVC on the raw 8x8 pixels, and a
PyTorch-tutorial-style loop (torchvision ImageFolder, per-sample PIL transforms, plain SGD).
Goal: at most 10 s, imports included.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import spread, table
from project.lit.datamodule import ImageDataModule
from project.models.cnn import SmallCNN

REPEATS = 3
TARGET = 0.99


def lightning_run() -> tuple[float, float, int]:
    """(seconds to the first step, seconds to TARGET, epochs) of one fresh process."""
    command = [sys.executable, "-m", "project", "fit", "--config", "configs/cnn.yaml",
               "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
               "--trainer.logger.init_args.save_dir=/tmp/bench_tta",
               "--trainer.callbacks+=benchmarks.stop_at_accuracy.StopAtAccuracy"]  # fmt: skip
    started = time.time()
    output = subprocess.run(command, capture_output=True, text=True, timeout=300).stdout
    first = reached = float("nan")
    epoch = -1
    for line in output.splitlines():
        if line.startswith("FIRST_STEP"):
            first = float(line.split()[1]) - started
        if line.startswith("REACHED"):
            reached, epoch = float(line.split()[1]) - started, int(line.split()[3])
    return first, reached, epoch


def split_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The default config's train/val/test split of the digits, as 8x8 grey pixel vectors."""
    data = ImageDataModule()
    data.prepare_data()
    arrays = {}
    for split in ("train", "val", "test"):
        dataset = data._labeled(split)
        pixels = np.stack([dataset.read(i)[0].numpy().ravel() for i in range(len(dataset))])
        arrays[split] = (pixels / 255.0, np.array(dataset.targets))
    return arrays


def svc_run(arrays) -> tuple[float, float]:
    from sklearn.svm import SVC

    start = time.perf_counter()
    model = SVC(gamma="scale").fit(*arrays["train"])
    accuracy = model.score(*arrays["test"])
    return time.perf_counter() - start, accuracy


def tutorial_run(max_epochs: int = 30) -> tuple[float, int]:
    """The tutorial recipe on the same files: (seconds of training to TARGET val acc, epochs)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    data = ImageDataModule()
    data._scan()
    transform = transforms.Compose(
        [transforms.Grayscale(3), transforms.Resize(16), transforms.ToTensor(),
         transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )  # fmt: skip
    folder = datasets.ImageFolder(str(data.root), transform=transform)
    index_of = {path: i for i, (path, _) in enumerate(folder.samples)}
    subset = {
        s: Subset(folder, [index_of[str(p)] for p, _ in data._samples[s]]) for s in ("train", "val")
    }
    train = DataLoader(subset["train"], batch_size=64, shuffle=True)
    val = DataLoader(subset["val"], batch_size=256)
    torch.manual_seed(0)
    network = SmallCNN(10)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    for epoch in range(max_epochs):
        network.train()
        for images, labels in train:
            optimizer.zero_grad()
            F.cross_entropy(network(images), labels).backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            correct = sum((network(x).argmax(1) == y).sum().item() for x, y in val)
        if correct / len(subset["val"]) >= TARGET:
            return time.perf_counter() - start, epoch
    return float("nan"), max_epochs


def main() -> dict:
    runs = [lightning_run() for _ in range(REPEATS)]
    first, reached = [r[0] for r in runs], [r[1] for r in runs]
    svc_seconds, svc_accuracy = svc_run(split_arrays())
    tutorial_seconds, tutorial_epochs = tutorial_run()
    table(
        f"3. Time to {TARGET:.0%} validation accuracy (digits, 179 val images)",
        ["run", "seconds", "notes"],
        [
            ["python -m project fit (default config), process start -> first step",
             spread(first, " s", 1), f"{REPEATS} fresh processes"],
            ["python -m project fit (default config), process start -> 99% val acc",
             spread(reached, " s", 1), f"epochs reached: {[r[2] for r in runs]}; goal <= 10 s"],
            ["scikit-learn SVC, fit + test (no images, 8x8 pixels)", f"{svc_seconds:.2f} s",
             f"test acc {svc_accuracy:.4f}"],
            ["tutorial-style loop (ImageFolder, PIL, SGD), training only",
             f"{tutorial_seconds:.1f} s", f"epochs: {tutorial_epochs + 1}"],
        ],
    )  # fmt: skip
    return {"first_step": first, "reached": reached}


if __name__ == "__main__":
    main()
