# %% [markdown]
# # Lesson 4: the minimal training loop
#
# Demo phase. `python lessons/04_minimal_loop.py` (a few seconds on a laptop CPU), or open it as
# a notebook. It trains the project's `SmallCNN` on the bundled handwritten digits with nothing
# but plain PyTorch and the project's Dataset, and asserts the validation accuracy it reaches.
#
# Read it top to bottom: data, model, the training step, validation, prediction. The project's own
# plain loop, `project/manual/loop.py`, is this loop plus what a real run needs (mixed precision, LR
# schedule, checkpoints, resume, logging), and it imports no Lightning: the loss, the optimizer and
# the schedule come from `project/core/recipe.py`, which `project/lit/classifier.py` runs under
# Lightning (lesson 5). This lesson answers "write a training loop from scratch".

# %%
import project  # noqa: F401  first: its CPU thread rule must be set before torch loads

# isort: split
import os
import shutil
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from project.data.datasets import ImageDataset
from project.data.digits import write_digits
from project.data.splits import stratified_split
from project.data.transforms import channel_mean_std, eval_transform, resize
from project.models.cnn import SmallCNN

torch.manual_seed(0)
EPOCHS, BATCH_SIZE, IMAGE_SIZE, TARGET = 3, 64, 16, 0.95
started = time.perf_counter()

# %% [markdown]
# ## Data: files -> Dataset -> DataLoader
# `write_digits` writes the 1,797 digits as PNG files once (data/digits/<class>/<id>.png).
# `ImageDataset` (project/data/datasets.py) is the custom Dataset of exercise 1; `decode_all()`
# reads every file once into memory. Validation uses its own images, never seen in training.

# %%
dataset = ImageDataset.from_folder(write_digits("data/digits")).decode_all()
# 10% of each class for validation, 20% for the test, the other 70% for training.
train_idx, val_idx, _test_idx = stratified_split(
    dataset.targets, val_fraction=0.1, test_fraction=0.2, seed=42
)
assert not set(train_idx) & set(val_idx), "validation images are not training images"

# Normalize with statistics of the training images only (at the size the network sees).
mean, std = channel_mean_std(resize(IMAGE_SIZE)(dataset.read(i)) for i in train_idx)
data = dataset.with_transform(eval_transform(IMAGE_SIZE, mean, std))
# drop_last=True: each epoch leaves out the last, smaller batch of the shuffled training images
# (other images each epoch), so every step averages over BATCH_SIZE images: no tiny last batch
# with a noisy gradient, and BatchNorm never sees a batch of 1. Never for validation: it would
# skip images.
train_loader = DataLoader(Subset(data, train_idx), BATCH_SIZE, shuffle=True, drop_last=True)
assert len(train_loader) == len(train_idx) // BATCH_SIZE  # full batches only
val_loader = DataLoader(Subset(data, val_idx), batch_size=256)  # no shuffle: the same every epoch
images, labels = next(iter(train_loader))
print("a batch:", tuple(images.shape), images.dtype, "labels", tuple(labels.shape), labels.dtype)
assert images.shape == (BATCH_SIZE, 3, IMAGE_SIZE, IMAGE_SIZE) and labels.dtype == torch.int64
pixels = torch.stack([data[i][0] for i in train_idx[:500]])  # 500 training images
assert abs(pixels.mean().item()) < 0.01 and abs(pixels.std().item() - 1) < 0.05  # normalized

# %% [markdown]
# `num_workers`: with files on disk, worker processes decode images while the model trains
# (`DataLoader(..., num_workers=4, pin_memory=True)` on a GPU machine). These images are already in
# memory, so workers would only add start-up time here; they give the same batches. How many
# workers and what batch size suit your machine: `python -m benchmarks.loader_settings` times a
# few settings on it and prints a table and its advice.

# %%
with_workers = DataLoader(Subset(data, val_idx), batch_size=256, num_workers=2)
assert all(torch.equal(a[0], b[0]) for a, b in zip(with_workers, val_loader, strict=True)), (
    "two worker processes deliver the same validation batches"
)

# %% [markdown]
# ## Model, device, optimizer
# The model and every batch must be on the same device: `.to(device)` for both.

# %%
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = SmallCNN(num_classes=10).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

# %% [markdown]
# ## The loop
# Per batch: move to the device, `zero_grad()`, forward, loss, `backward()`, `step()`. Per epoch:
# `model.train()` for training, then `model.eval()` and `torch.no_grad()` for validation.


# %%
def evaluate(model, loader) -> float:
    model.eval()  # dropout off, BatchNorm uses its running statistics
    correct = 0
    with torch.no_grad():  # no graph: validation needs no gradients
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            correct += (model(images).argmax(dim=1) == labels).sum().item()
    return correct / len(loader.dataset)


for epoch in range(EPOCHS):
    model.train()
    for images, labels in train_loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        logits = model(images)
        assert logits.shape == (len(images), 10)  # (batch, classes): check shapes as you go
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
    accuracy = evaluate(model, val_loader)
    print(f"epoch {epoch + 1}: last training loss {loss.item():.3f}, val accuracy {accuracy:.3f}")

print(f"trained in {time.perf_counter() - started:.1f} s (data included)")
assert accuracy >= TARGET, f"expected at least {TARGET} validation accuracy, got {accuracy}"

# %% [markdown]
# ## Prediction: one image, no graph
# A model takes batches: one image needs `unsqueeze(0)`. `torch.no_grad()` keeps no graph.

# %%
image, label = data[val_idx[0]]
model.eval()
with torch.no_grad():
    probabilities = model(image.unsqueeze(0).to(device)).softmax(dim=1)
assert probabilities.shape == (1, 10) and not probabilities.requires_grad
print(f"image of a {label}: predicted {probabilities.argmax().item()}")

# %% [markdown]
# ## Memory
# On a GPU, `torch.cuda.max_memory_allocated()` is the peak PyTorch held: watch it when you
# raise the batch size or the image size. On a CPU, the process's peak resident memory.

# %%
if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated() / 2**20
    print(f"peak GPU memory: {peak:.1f} MiB")
    assert peak > 0
else:
    try:
        import resource  # Unix only

        # ru_maxrss is in KiB on Linux, in bytes on macOS.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = rss / 2**20 if sys.platform == "darwin" else rss / 1024
        print(f"no GPU: peak process memory {peak:.0f} MiB (torch.cuda counters need a GPU)")
    except ImportError:
        print("no GPU and no resource module: torch.cuda.max_memory_allocated() needs a GPU")

# %% [markdown]
# ## torch.compile
# `torch.compile(model)` traces the model and generates fused code; the first calls compile
# (about 20 s for this CNN on a 2-core CPU, see benchmarks/README.md), later ones run the
# generated code. It changes speed, not results. Set `LESSON_COMPILE=1` to run it here.

# %%
compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
if os.environ.get("LESSON_COMPILE") != "1":
    print("torch.compile skipped: it takes tens of seconds to compile; LESSON_COMPILE=1 runs it")
elif device.type == "cpu" and compiler is None:
    print("torch.compile skipped: no C compiler (cc, gcc, clang) found for the CPU backend")
else:
    compiled = torch.compile(model)
    batch = next(iter(val_loader))[0].to(device)
    with torch.no_grad():
        assert torch.allclose(compiled(batch), model(batch), atol=1e-4)
    print("torch.compile: the compiled model gives the same logits")

print("lesson 4: every assertion held")
