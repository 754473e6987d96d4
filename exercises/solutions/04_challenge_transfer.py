"""Exercise 4 (the challenge), reference solution: transfer learning with a pretrained ResNet18.

Check it with ``python -m exercises.check 4 --solution`` (``make challenge-data`` first, once).
Run it with ``python exercises/solutions/04_challenge_transfer.py``. The project's version of the
same recipe, for any torchvision backbone and with the head-first-then-unfreeze stages, is
``TransferNetwork`` in project/models/transfer.py and configs/resnet18.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import resnet18

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere
from project.data.datasets import ImageDataset  # noqa: E402  (the Dataset of exercise 1)
from project.data.transforms import eval_transform  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "glyphs" / "digits" / "k20_seed0"  # written by make challenge-data
WEIGHTS = ROOT / "data" / "glyphs" / "source_resnet18.pth"  # the "pretrained" backbone
MEAN, STD = [0.084] * 3, [0.194] * 3  # what the backbone was trained with: keep them


def build_model(num_classes: int, weights_file: str | Path) -> nn.Module:
    """A ResNet18 with the weights in ``weights_file``, a new final layer, the rest frozen."""
    model = resnet18(weights=None)  # online: resnet18(weights=ResNet18_Weights.DEFAULT)
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the old head goes
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected, (missing, unexpected)
    for parameter in model.parameters():
        parameter.requires_grad = False  # freeze the backbone ...
    model.fc = nn.Linear(model.fc.in_features, num_classes)  # ... a new layer trains by default
    return model


def make_optimizer(model: nn.Module, epochs: int, steps_per_epoch: int):
    """AdamW over the trainable parameters, and a one-cycle LR schedule stepped every batch."""
    trainable = [p for p in model.parameters() if p.requires_grad]  # the head only
    optimizer = torch.optim.AdamW(trainable, lr=0.01, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, total_steps=epochs * steps_per_epoch
    )  # warm up for 30% of the steps, then anneal to almost 0
    return optimizer, scheduler


def autocast_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.bfloat16  # CPUs: bfloat16 only


def train_one_epoch(model, loader, optimizer, scheduler, device: torch.device) -> float:
    """One epoch of the head under mixed precision; the LR schedule moves every batch."""
    model.eval()  # a frozen backbone keeps its BatchNorm statistics (train() would update them)
    model.fc.train()  # only the head trains (a Linear layer behaves the same in both modes)
    dtype = autocast_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # fp16 only
    total_loss, total_images = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=dtype):  # matmuls and convs in 16 bits
            loss = F.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()  # outside autocast; the scale is 1 when disabled
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # after optimizer.step(): the next batch gets the next LR
        total_loss += loss.item() * labels.shape[0]
        total_images += labels.shape[0]
    return total_loss / total_images


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device) -> tuple[float, float]:
    """(mean loss per image, accuracy) over ``loader``: exercise 2's evaluate."""
    model.eval()
    total_loss, correct, total_images = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        total_images += labels.shape[0]
    return total_loss / total_images, correct / total_images


def fit(model, train_loader, val_loader, epochs: int, checkpoint: str | Path, device) -> float:
    """Train ``epochs`` epochs; keep the weights of the best validation accuracy in
    ``checkpoint``; return that accuracy."""
    optimizer, scheduler = make_optimizer(model, epochs, len(train_loader))
    best = -1.0
    for epoch in range(epochs):
        loss = train_one_epoch(model, train_loader, optimizer, scheduler, device)
        val_loss, accuracy = evaluate(model, val_loader, device)
        print(
            f"epoch {epoch}: train loss {loss:.3f}, val loss {val_loss:.3f}, val acc {accuracy:.4f}"
        )
        if accuracy > best:  # the best epoch so far, by validation accuracy
            best = accuracy
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {"model": model.state_dict(), "epoch": epoch, "val_acc": accuracy}, checkpoint
            )
    return best


def loaders(root: Path, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    """The challenge's images (root/train, root/val) through the project's Dataset."""
    transform = eval_transform(32, MEAN, STD)
    train = ImageDataset.from_folder(root / "train", transform).decode_all()
    val = ImageDataset.from_folder(root / "val", transform).decode_all()
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True),
        DataLoader(val, batch_size=256),
    )


def run_challenge(data=DATA, weights=WEIGHTS, checkpoint=None, epochs: int = 15) -> float:
    """The whole challenge; returns the best validation accuracy."""
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_loader, val_loader = loaders(Path(data))
    model = build_model(len(train_loader.dataset.class_names), weights).to(device)
    checkpoint = checkpoint or ROOT / "lightning_logs" / "challenge" / "best.pt"
    best = fit(model, train_loader, val_loader, epochs, checkpoint, device)
    print(f"best validation accuracy {best:.4f}, weights in {checkpoint}")
    return best


if __name__ == "__main__":
    run_challenge()
