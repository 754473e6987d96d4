# %% [markdown]
# # Lesson 7: making a trained model faster and smaller
#
# Reflection phase, next steps. `python lessons/07_optimize.py` (6.6 s on the idle 2-core dev VM,
# 9.4 s beside one CPU hog: WORKSHOP.md's timing table; `LESSON_COMPILE=1` adds `torch.compile`,
# whose compile took 10.1 s in a participant's run beside a CPU hog), or open it as a notebook.
# It trains lesson 4's `SmallCNN` on the digits for two epochs, then measures what each technique
# does to its speed, size and accuracy: `torch.compile`, bf16 autocast, int8 quantization,
# pruning by masks and structural pruning.
#
# Speeds are measured here, on your machine, as ratios of interleaved runs (the median of
# several). What is asserted holds on any CPU, busy or idle: exact counts of parameters,
# operations and bytes, and accuracy within a margin. Speeds are printed, never asserted (another
# program on your laptop moves them): on a CPU without bf16 units bf16 is slower; on a GPU faster.

# %%
import project  # noqa: F401  first: its CPU thread rule must be set before torch loads

# isort: split
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Subset

from project.data.datasets import ImageDataset
from project.data.digits import write_digits
from project.data.splits import stratified_split
from project.data.transforms import channel_mean_std, eval_transform, resize
from project.models.cnn import SmallCNN

torch.manual_seed(0)
IMAGE_SIZE = 16

# %% [markdown]
# ## The model: lesson 4's CNN, trained for two epochs

# %%
dataset = ImageDataset.from_folder(write_digits("data/digits")).decode_all()
# 10% validation, 20% test (unused here), the rest training
train_idx, val_idx, _ = stratified_split(dataset.targets, 0.1, 0.2, seed=42)
mean, std = channel_mean_std(resize(IMAGE_SIZE)(dataset.read(i)) for i in train_idx)
data = dataset.with_transform(eval_transform(IMAGE_SIZE, mean, std))
train_loader = DataLoader(Subset(data, train_idx), batch_size=64, shuffle=True, drop_last=True)
val_images = torch.stack([data[i][0] for i in val_idx])
val_labels = torch.tensor([data[i][1] for i in val_idx])


def train(model, epochs: int) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for images, labels in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
    model.eval()


def accuracy(model, images=val_images) -> float:
    with torch.inference_mode():
        return (model(images).argmax(dim=1) == val_labels).float().mean().item()


model = SmallCNN(num_classes=10)
train(model, epochs=2)
baseline = accuracy(model)
print(f"fp32 model: val accuracy {baseline:.3f}")
assert baseline > 0.9

# %% [markdown]
# ## Measuring speed fairly
# One batch of 256 images through the model, timed many times. The variants are timed in turns
# (A B A B ...), so a machine that slows down for a while slows all of them alike; each gets the
# median of its runs, and we compare ratios, never absolute times from different moments.

# %%
batch = val_images[:128].repeat(2, 1, 1, 1)  # 256 images


def timed(variants: dict, repeats: int = 15) -> dict:
    """Median seconds of one forward of ``batch`` for each callable, interleaved."""
    times = {name: [] for name in variants}
    with torch.inference_mode():
        for function in variants.values():
            function(batch)  # warm-up: first calls allocate and pick kernels
        for _ in range(repeats):
            for name, function in variants.items():
                started = time.perf_counter()
                function(batch)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(runs) for name, runs in times.items()}


# %% [markdown]
# ## 1. `torch.compile`: compile time first, speed after
# The first call traces the model and generates fused code (tens of seconds on a CPU); later calls
# run it. Worth it for long runs, not for a one-off. It changes speed, not results.

# %%
compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
if os.environ.get("LESSON_COMPILE") != "1":
    print("torch.compile skipped: it takes tens of seconds to compile; LESSON_COMPILE=1 runs it")
elif compiler is None:
    print("torch.compile skipped: no C compiler (cc, gcc, clang) found for the CPU backend")
else:
    compiled = torch.compile(model)
    started = time.perf_counter()
    with torch.inference_mode():
        compiled_logits = compiled(batch)
    compile_seconds = time.perf_counter() - started
    with torch.inference_mode():
        assert torch.allclose(compiled_logits, model(batch), atol=1e-4)
    speed = timed({"eager": model, "compiled": compiled})
    print(f"torch.compile: first call {compile_seconds:.1f} s (compiling), then "
          f"{speed['eager'] / speed['compiled']:.2f}x the eager speed")  # fmt: skip
    # Compiling costs far more than one forward saves: it pays only over many batches.
    assert compile_seconds > 10 * speed["eager"]

# %% [markdown]
# ## 2. bf16 autocast: half the bytes per number
# `torch.autocast` runs matrix multiplies and convolutions in bfloat16 (8 bits of mantissa
# instead of 23); the weights stay fp32. Training uses it too (`precision: bf16-mixed`).
# Accuracy barely moves; speed depends on the hardware (bf16 units: recent GPUs, Intel AMX).


# %%
def bf16(images):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model(images)


with torch.inference_mode():
    assert bf16(batch).dtype == torch.bfloat16
bf16_accuracy = accuracy(bf16)
speed = timed({"fp32": model, "bf16": bf16})
print(f"bf16 autocast: val accuracy {bf16_accuracy:.3f} (fp32 {baseline:.3f}), "
      f"{speed['fp32'] / speed['bf16']:.2f}x the fp32 speed on this CPU")  # fmt: skip
assert abs(bf16_accuracy - baseline) <= 0.02

# %% [markdown]
# ## 3. int8 quantization: a quarter of the bytes
# Static quantization stores weights as int8 and computes with int8 activations, each tensor with
# a scale measured on calibration batches. Here with ONNX Runtime: the model is exported with the
# project's exporter (`project/deploy/export.py`, the same as `python -m project export`),
# `quant_pre_process` prepares the graph (shapes inferred, each convolution with its BatchNorm
# folded, so they quantize as one; ONNX Runtime advises it when it is skipped), then
# `quantize_static` calibrates it on 256 training images. (torchao's PT2E flow,
# `prepare_pt2e`/`convert_pt2e` with `X86InductorQuantizer`, works too, but its export and
# calibration took 25 s here and its speed needs `torch.compile`.)

# %%
import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402

from project.deploy.export import export_onnx  # noqa: E402


class Calibration(CalibrationDataReader):
    def __init__(self):
        images = torch.stack([data[i][0] for i in train_idx[:256]])
        self.batches = iter([{"images": chunk.numpy()} for chunk in images.split(64)])

    def get_next(self):
        return next(self.batches, None)


folder = Path(tempfile.mkdtemp())
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the exporter's and quantizer's advice
    fp32_file = export_onnx(model, {"image_size": IMAGE_SIZE}, folder / "model.onnx")
    prepared_file, int8_file = folder / "model.prep.onnx", folder / "model.int8.onnx"
    quant_pre_process(str(fp32_file), str(prepared_file), skip_symbolic_shape=True)
    quantize_static(prepared_file, int8_file, Calibration(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
sessions = {name: ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            for name, path in [("onnx fp32", fp32_file), ("onnx int8", int8_file)]}  # fmt: skip


def runner(session):
    return lambda images: torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


int8_accuracy = accuracy(runner(sessions["onnx int8"]))
size_ratio = int8_file.stat().st_size / fp32_file.stat().st_size
speed = timed({name: runner(session) for name, session in sessions.items()})
int8_speedup = speed["onnx fp32"] / speed["onnx int8"]
print(f"int8: file {size_ratio:.2f}x the fp32 file, val accuracy {int8_accuracy:.3f} "
      f"(fp32 {baseline:.3f}), {int8_speedup:.2f}x the fp32 speed")  # fmt: skip
assert size_ratio < 0.4  # 1 byte per weight instead of 4, plus scales and the graph
assert abs(int8_accuracy - baseline) <= 0.03
shutil.rmtree(folder)

# %% [markdown]
# ## 4. Pruning by masks: zeros, not speed
# `torch.nn.utils.prune` zeroes the smallest half of each conv's weights, through a mask that is
# multiplied in at every forward. The tensors keep their shapes: the same multiplications run, on
# zeros, plus the masking. Smaller only once stored sparse, faster only with sparse kernels.

# %%
masked = SmallCNN(num_classes=10)
masked.load_state_dict(model.state_dict())
masked.eval()
convs = [m for m in masked.modules() if isinstance(m, torch.nn.Conv2d)]
for conv in convs:
    prune.l1_unstructured(conv, name="weight", amount=0.5)
zeros = sum((conv.weight == 0).sum().item() for conv in convs)
weights = sum(conv.weight.numel() for conv in convs)
speed = timed({"dense": model, "masked": masked})
masked_speedup = speed["dense"] / speed["masked"]
print(f"masks: {zeros / weights:.0%} of the conv weights are zero, "
      f"accuracy {accuracy(masked):.3f}, {masked_speedup:.2f}x the dense speed")  # fmt: skip
assert zeros / weights >= 0.5
dense_convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
assert [c.weight.shape for c in convs] == [c.weight.shape for c in dense_convs]  # same shapes
# Not faster, and the count says why: the zeros are still multiplied, every one of them.
assert (
    tp.utils.count_ops_and_params(masked, batch[:1])[0]
    == tp.utils.count_ops_and_params(model, batch[:1])[0]
)

# %% [markdown]
# ## 5. Structural pruning: fewer channels, a smaller network
# `torch_pruning` removes whole channels (the half with the smallest L1 norm) and, following the
# dependency graph, the matching inputs of the next layer and BatchNorm: the result is an ordinary,
# smaller `nn.Module`. Accuracy drops, so it is fine-tuned for an epoch afterwards.

# %%
pruned = SmallCNN(num_classes=10)
pruned.load_state_dict(model.state_dict())
pruned.eval()
example = batch[:1]
macs, params = tp.utils.count_ops_and_params(model, example)
pruner = tp.pruner.MagnitudePruner(
    pruned,
    example,
    importance=tp.importance.MagnitudeImportance(p=1),
    pruning_ratio=0.5,
    ignored_layers=[pruned.head[1]],  # the 10 outputs are the classes: keep them
)
pruner.step()
pruned_macs, pruned_params = tp.utils.count_ops_and_params(pruned, example)
before_tuning = accuracy(pruned)
train(pruned, epochs=1)
speed = timed({"dense": model, "pruned": pruned})
print(f"structural: {pruned_params / params:.2f}x the parameters, {pruned_macs / macs:.2f}x the "
      f"multiply-adds, accuracy {before_tuning:.3f} pruned, {accuracy(pruned):.3f} after one "
      f"epoch of fine-tuning, {speed['dense'] / speed['pruned']:.2f}x the dense speed")  # fmt: skip
assert [m.out_channels for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 32, 64]
assert pruned_params < 0.3 * params and pruned_macs < 0.3 * macs  # half the channels: ~1/4
assert accuracy(pruned) > 0.85
# Speed is printed, not asserted (a busy machine moves it); the work is: a quarter of the
# multiply-adds above, which an idle CPU turns into a faster network.

# %% [markdown]
# ## Where the project does this at full size
# - `python -m project export --ckpt_path <checkpoint> --output model.onnx`: a trained checkpoint
#   of either loop as ONNX (project/deploy/export.py), the file section 3 quantizes; `--format pt2`
#   writes a `torch.export` program (and an AOTInductor package), each checked on the test split.
# - `python -m project quantize --ckpt_path <checkpoint>`: section 3 at full size, calibrated on
#   the checkpoint's own training images, fp32 and int8 accuracy and file sizes side by side
#   (project/deploy/quantize.py; measured in docs/deploy.md).
# - `python -m project prune --ckpt_path <checkpoint> --amount 0.3`: section 5's structural
#   pruning with Torch-Pruning over a whole network, then fine-tuned through `fit`
#   (project/deploy/prune.py).
# - `python -m project serve --ckpt_path <checkpoint>` (or `--onnx model-int8.onnx`, the file
#   `quantize` writes): the model behind an HTTP endpoint with dynamic batching, and a page to try
#   it in a browser (project/serve/).
# - `torch.compile`: `model.init_args.compile: true` in a config (project/core/recipe.py).
# - bf16: `--trainer.precision bf16-mixed` trains and validates with autocast.

# %%
print("lesson 7: every assertion held")
