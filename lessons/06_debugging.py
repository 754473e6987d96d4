# %% [markdown]
# # Lesson 6: debugging a model
#
# Reflection phase. `python lessons/06_debugging.py` (4.8 s on the idle 2-core dev VM, 6.9 s beside
# one CPU hog: WORKSHOP.md's timing table), or open it as a notebook. Six tools for the questions
# a broken run raises, each shown on a real bug and asserted: what shape is every layer's output
# (forward hooks); can the model learn at all (overfit one batch); which operation made the NaN
# (`torch.autograd.detect_anomaly`); what inference costs in memory (`no_grad`,
# `inference_mode`); where the time goes (`torch.profiler`); and how to read a Lightning stack
# trace.

# %%
import project  # noqa: F401  first: its CPU thread rule must be set before torch loads

# isort: split
import os
import time
import traceback
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from project.data.datasets import ImageDataset
from project.data.digits import write_digits
from project.data.transforms import channel_mean_std, eval_transform, resize
from project.models.cnn import SmallCNN

torch.manual_seed(0)
BATCH_SIZE, IMAGE_SIZE = 64, 16

# %% [markdown]
# ## 1. The shapes through a network: forward hooks
# `register_forward_hook(fn)` calls `fn(module, inputs, output)` after a module's forward. One
# hook on every leaf module prints a shape table for one batch: the first thing to look at when
# a `Linear` complains about `mat1 and mat2 shapes cannot be multiplied`.

# %%
model = SmallCNN(num_classes=10)
rows = []


def record_shape(module, inputs, output):
    rows.append((module.name, type(module).__name__, tuple(inputs[0].shape), tuple(output.shape)))


hooks = []
for name, module in model.named_modules():
    if not list(module.children()):  # leaves only: Conv2d, BatchNorm2d, ReLU, ...
        module.name = name
        hooks.append(module.register_forward_hook(record_shape))
model.eval()
with torch.no_grad():
    model(torch.zeros(BATCH_SIZE, 3, IMAGE_SIZE, IMAGE_SIZE))
for hook in hooks:
    hook.remove()  # hooks stay until removed: remove them, or every later forward prints too

print(f"{'module':<14}{'type':<18}{'input':<20}output")
for name, kind, shape_in, shape_out in rows:
    print(f"{name:<14}{kind:<18}{shape_in!s:<20}{shape_out}")
by_name = {name: shape_out for name, _, _, shape_out in rows}
assert by_name["backbone.0.0"] == (BATCH_SIZE, 32, 16, 16)  # conv: padding keeps 16x16
assert by_name["backbone.3"] == (BATCH_SIZE, 128, 1, 1)  # adaptive pooling: any image size
assert by_name["backbone.4"] == (BATCH_SIZE, 128)  # Flatten: what the Linear head needs
assert rows[-1][3] == (BATCH_SIZE, 10)  # logits: (batch, classes)

# %% [markdown]
# ## 2. Overfit one batch: the first test of a new model
# A model, loss and optimizer that are wired right drive the accuracy on ONE fixed batch to
# 100% in a few dozen steps (no augmentation, no dropout). If they cannot, nothing else is worth
# trying yet. Full size, in both loops (configs/presets/overfit.yaml sets Lightning's
# `trainer.overfit_batches: 1`: the first batch only, the shuffle off):
#
#     python -m project fit --config configs/cnn.yaml --config configs/presets/overfit.yaml
#     python -m project.manual fit --config configs/cnn.yaml --config configs/presets/overfit.yaml

# %%
files = ImageDataset.from_folder(write_digits("data/digits"))
first = Subset(files, range(0, len(files), 7))  # a spread of classes, not only zeros
mean, std = channel_mean_std(resize(IMAGE_SIZE)(files.read(i)) for i in first.indices)
data = files.with_transform(eval_transform(IMAGE_SIZE, mean, std))
images, labels = next(iter(DataLoader(Subset(data, first.indices), BATCH_SIZE)))


def overfit(model, optimizer, steps=40) -> float:
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


model = SmallCNN(num_classes=10, dropout=0.0)
accuracy = overfit(model, torch.optim.AdamW(model.parameters(), lr=3e-3))
print(f"one batch of {BATCH_SIZE}, 40 steps: accuracy {accuracy:.3f}")
assert accuracy == 1.0

# A classic bug this test catches: the optimizer holds the parameters of an older model (built
# before the model was re-created); backward() fills gradients that nobody steps with.
stale = SmallCNN(num_classes=10, dropout=0.0)
model = SmallCNN(num_classes=10, dropout=0.0)
accuracy = overfit(model, torch.optim.AdamW(stale.parameters(), lr=3e-3))
print(f"optimizer over the wrong parameters: accuracy {accuracy:.3f}")
assert accuracy < 0.5

# %% [markdown]
# ## 3. Which operation made the NaN: `torch.autograd.detect_anomaly`
# A NaN loss is usually found many steps after it was made, in the *backward* pass. A classic:
# `torch.where(x > 0, x.sqrt(), 0)` is finite forward, but `sqrt` of a negative x is NaN and its
# gradient too, and `where` does not stop a NaN gradient (0 * NaN = NaN). `detect_anomaly`
# checks every backward function's output and names the one that returned NaN, with the forward
# line that made it (slow: a debugging tool, not for every run; Lightning:
# `Trainer(detect_anomaly=True)`).

# %%
x = torch.tensor([4.0, -1.0], requires_grad=True)
y = torch.where(x > 0, x.sqrt(), torch.zeros_like(x)).sum()
assert torch.isfinite(y)  # the forward pass looks fine
y.backward()
print("gradient without anomaly detection:", x.grad)
assert torch.isnan(x.grad[1])  # ... the gradient is NaN, and nothing says where it came from

x.grad = None
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Anomaly Detection has been enabled ..." and a traceback
    try:
        with torch.autograd.detect_anomaly():
            torch.where(x > 0, x.sqrt(), torch.zeros_like(x)).sum().backward()
        raise AssertionError("detect_anomaly should have raised")
    except RuntimeError as error:
        message = str(error)
print("with detect_anomaly:", message)
assert "SqrtBackward0" in message and "nan" in message
# The fix: keep the NaN out of the forward pass, e.g. x.clamp(min=0).sqrt() (gradient 0 there).

# %% [markdown]
# ## 4. Inference: `no_grad` against `inference_mode` against neither
# Without either, every forward keeps the activations the backward pass would need: memory for
# nothing at inference. `torch.no_grad()` keeps none; `torch.inference_mode()` keeps none and
# also skips autograd's bookkeeping on the outputs (a little faster), but its outputs can never
# enter autograd later. We measure what the forward saved for backward with
# `saved_tensors_hooks` (on a GPU, `torch.cuda.max_memory_allocated()` shows the same).

# %%
model = SmallCNN(num_classes=10).eval()
batch = torch.randn(256, 3, IMAGE_SIZE, IMAGE_SIZE)


def saved_bytes(context) -> tuple[int, torch.Tensor]:
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), context:
        output = model(batch)
    return sum(saved), output


memory = {}
for name, context in [
    ("neither", torch.enable_grad()),
    ("no_grad", torch.no_grad()),
    ("inference_mode", torch.inference_mode()),
]:
    memory[name], output = saved_bytes(context)
    print(f"{name:<15} kept for backward: {memory[name] / 2**20:6.2f} MiB, "
          f"output requires_grad={output.requires_grad}")  # fmt: skip
assert memory["neither"] > 5 * 2**20  # megabytes of activations for a batch of 256 small images
assert memory["no_grad"] == memory["inference_mode"] == 0
with torch.inference_mode():
    frozen = model(batch)
assert frozen.is_inference()
try:  # an inference tensor cannot be saved for backward later: use no_grad if you need that
    (frozen * torch.ones(1, requires_grad=True)).sum().backward()
    raise AssertionError("inference tensors should be refused by autograd")
except RuntimeError as error:
    assert "Inference tensors cannot be saved for backward" in str(error)

# %% [markdown]
# ## 5. A slow input pipeline, found with `torch.profiler`
# The model is fast and the GPU waits: the data is the bottleneck. Here each image is kept at
# 512x512 and resized to 16x16 in `__getitem__` at every epoch, the mistake of resizing on the fly
# what could be resized once. `record_function` labels the two parts; the profiler's table of
# top operations shows where the time goes. On a machine without a GPU the profiler may first log
# `gpuGetDeviceCount failed` and a few `USDT` lines: it looked for a GPU to trace and found none.
# Nothing to fix; the CPU table below is complete.

# %%
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402


class BigImages(Dataset):
    def __init__(self, count: int):
        self.images = torch.rand(count, 3, 512, 512)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return resize(IMAGE_SIZE)(self.images[index]), 0  # the same resize, every epoch


def profile_epoch(loader) -> dict:
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        iterator = iter(loader)
        for _ in range(len(loader)):
            with record_function("data"):
                images, _ = next(iterator)
            with record_function("model"), torch.no_grad():
                model(images)
    return profiler


model = SmallCNN(num_classes=10).eval()
with torch.no_grad():
    model(torch.zeros(32, 3, IMAGE_SIZE, IMAGE_SIZE))  # warm-up: the first call allocates
slow = BigImages(64)
profiler = profile_epoch(DataLoader(slow, batch_size=32))
print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=8))
total = {e.key: e.cpu_time_total for e in profiler.key_averages() if e.key in ("data", "model")}
print(f"data {total['data'] / 1e3:.1f} ms, model {total['model'] / 1e3:.1f} ms")


def resizes(profiler) -> int:
    """How many times the profiled epoch resized an image (the operation's call count)."""
    return max((e.count for e in profiler.key_averages() if "upsample" in e.key), default=0)


# Times move with whatever else the machine runs (on a busy laptop the model's share can grow);
# the count of work does not: one resize per image per epoch, each reading 512 x 512 x 3 floats.
print(f"{resizes(profiler)} resizes of a 512x512 image in one epoch of {len(slow)} images")
assert resizes(profiler) == len(slow)  # every image, every epoch: the pipeline's work

# The fix: resize once, keep the small images (project/data/cache.py does this for `make train`).
small = torch.stack([resize(IMAGE_SIZE)(image) for image in slow.images])
fixed = profile_epoch(DataLoader(list(zip(small, [0] * len(small), strict=True)), batch_size=32))
fixed_data = next(e.cpu_time_total for e in fixed.key_averages() if e.key == "data")
print(f"resized once: data {fixed_data / 1e3:.1f} ms, {resizes(fixed)} resizes per epoch")
assert resizes(fixed) == 0  # the epoch only reads the small images

# %% [markdown]
# ## 6. Reading a Lightning stack trace
# An error inside `training_step` surfaces after dozens of Lightning frames (the fit loop, the
# optimizer closure, the strategy). Read the trace **from the bottom**: the last line is the
# error; the last frames in *your* files say where. The frames above them are the loop that
# called you, and rarely the cause. Here a head of `Linear(64, 10)` after a 128-channel backbone.

# %%
import lightning as L  # noqa: E402

import project.lit  # noqa: E402, F401  its quiet.py filters Lightning's advert (a learner cannot act on it)


class Broken(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.network = SmallCNN(num_classes=10)
        self.network.head[1] = nn.Linear(64, 10)  # the bug: the backbone gives 128 features

    def training_step(self, batch, batch_index):
        images, labels = batch
        return F.cross_entropy(self.network(images), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
started = time.perf_counter()
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "does not have many workers"
        trainer.fit(Broken(), DataLoader(list(zip(images, labels, strict=True)), batch_size=16))
    raise AssertionError("the broken head should have raised")
except RuntimeError as error:
    frames = traceback.extract_tb(error.__traceback__)
    last_line = f"{type(error).__name__}: {error}"
installed = ("site-packages", "/lib/python")  # Lightning's and torch's files, not ours
ours = [f for f in frames if not any(part in f.filename for part in installed)]
theirs = [f for f in frames if "lightning" in f.filename]
print(f"{len(frames)} frames: {len(theirs)} in Lightning, {len(ours)} in our files; the last line:")
print("  ", last_line)
for frame in ours:
    where = f"{os.path.relpath(frame.filename)}, line {frame.lineno}, in {frame.name}"
    print(f"  ours: {where}: {frame.line}")
assert "mat1 and mat2 shapes cannot be multiplied (16x128 and 64x10)" in last_line
assert len(theirs) > 10  # the loop's frames come first ...
# ... then ours: training_step called SmallCNN.forward (project/models/cnn.py), whose head failed
assert [f.name for f in ours[-2:]] == ["training_step", "forward"], ours
# The numbers name the bug: 128 features arrive, the Linear expects 64. The shape table of
# section 1 shows where the 128 comes from.

print("lesson 6: every assertion held")
