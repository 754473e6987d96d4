# %% [markdown]
# # Lesson 1: tensors
#
# Concept phase. Run it as a script (`python lessons/01_tensors.py`) or open it as a notebook
# (VS Code runs the `# %%` cells; Jupyter opens it with jupytext). Every claim below is checked
# by an `assert`, so when the script ends without an error, everything it says held on your
# machine.
#
# What you learn: creating tensors, dtype and shape, broadcasting (the way normalization works),
# moving tensors to a device with a CPU fallback, and how much memory a tensor takes.

# %%
import numpy as np
import torch

torch.manual_seed(0)

# %% [markdown]
# ## Creating tensors
# From Python lists, with factory functions, or from NumPy arrays (which share memory).

# %%
a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
zeros = torch.zeros(2, 3)
steps = torch.arange(0, 10, 2)  # 0, 2, 4, 6, 8
noise = torch.rand(2, 3)  # uniform in [0, 1)
print(a, zeros, steps, noise, sep="\n")
assert steps.tolist() == [0, 2, 4, 6, 8]
assert bool((noise >= 0).all() and (noise < 1).all())

array = np.ones(3)
shared = torch.from_numpy(array)  # no copy: the tensor and the array are one memory
array[0] = 7
assert shared[0].item() == 7, "from_numpy shares memory with the array"
copied = torch.tensor(array)  # torch.tensor always copies
array[1] = 9
assert copied[1].item() == 1

# %% [markdown]
# ## dtype
# Python floats become float32, integers int64. Images arrive as uint8 (0..255) and become
# float32 before a network sees them. Mixing dtypes promotes by category first: a float beats an
# integer whatever their widths (int64 + float32 -> float32, not float64); within one category
# the wider one wins (float16 + float32 -> float32, uint8 + int64 -> int64).

# %%
assert a.dtype == torch.float32
assert torch.tensor([1, 2]).dtype == torch.int64  # class labels are int64 for cross_entropy
pixels = torch.tensor([0, 128, 255], dtype=torch.uint8)
scaled = pixels.float() / 255  # what ToTensor does: 0..255 -> 0.0..1.0
assert scaled.dtype == torch.float32 and scaled.max().item() == 1.0
assert (torch.tensor([1, 2]) + torch.tensor([0.5, 0.5])).dtype == torch.float32  # category
half = a.to(torch.float16)
assert (half + a).dtype == torch.float32  # two floats: the wider one
assert (pixels + torch.tensor([1, 2, 3])).dtype == torch.int64  # two integers: the wider one
assert half.element_size() == 2 and a.element_size() == 4  # bytes per element

# %% [markdown]
# ## Shape
# A batch of colour images is (batch, channels, height, width). A single image has no batch
# dimension: add one with `unsqueeze(0)` before calling a model. Check shapes as you go.

# %%
image_hwc = torch.rand(16, 16, 3)  # how PIL and NumPy store a picture: height, width, channels
image = image_hwc.permute(2, 0, 1)  # channels first, as PyTorch's layers expect
assert image.shape == (3, 16, 16)
batch = image.unsqueeze(0)  # a batch of one
assert batch.shape == (1, 3, 16, 16)
flat = batch.reshape(1, -1)  # -1: whatever size is left over
assert flat.shape == (1, 3 * 16 * 16)
assert a.sum(dim=0).shape == (3,) and a.sum(dim=1).shape == (2,)  # dim: the one that goes away
assert torch.equal(a @ a.T, torch.tensor([[14.0, 32.0], [32.0, 77.0]]))  # matrix product

# %% [markdown]
# ## Broadcasting
# Dimensions of size 1 stretch to match: a (3, 1, 1) mean subtracts one value per channel from a
# (3, H, W) image. That is exactly how `Normalize(mean, std)` works.

# %%
mean = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)
std = torch.tensor([0.25, 0.2, 0.1]).view(3, 1, 1)
normalized = (image - mean) / std
assert normalized.shape == image.shape
assert torch.allclose(normalized[1], (image[1] - 0.4) / 0.2)  # channel 1 used mean 0.4, std 0.2
try:
    image - torch.tensor([0.5, 0.4, 0.3])  # shape (3,) lines up with width (16), not channels
except RuntimeError as error:
    print("shapes that do not line up:", error)
else:
    raise AssertionError("a (3,) tensor should not broadcast against (3, 16, 16)")

# %% [markdown]
# ## Devices, with a CPU fallback
# Pick the best device there is; the same code then runs on a laptop and on a GPU machine.
# A model and its data must be on the same device.

# %%
if torch.cuda.is_available():
    device = torch.device("cuda")
elif torch.backends.mps.is_available():  # Apple silicon
    device = torch.device("mps")
else:
    device = torch.device("cpu")
print("device:", device)
on_device = a.to(device)
assert on_device.device.type == device.type
back = on_device.cpu()  # .cpu() / .numpy() / .item() bring values back to the host
assert torch.equal(back, a)
if device.type != "cpu":
    try:
        on_device + a  # one tensor on the GPU, one on the CPU
    except RuntimeError as error:
        print("mixing devices fails:", str(error).splitlines()[0])
    else:
        raise AssertionError("adding a GPU tensor to a CPU tensor should fail")
else:
    print("no GPU here: the device-mismatch error is shown on a GPU machine")

# %% [markdown]
# ## Memory
# A tensor takes `numel() x element_size()` bytes. On a GPU, `torch.cuda.memory_allocated()`
# counts what PyTorch holds, and `max_memory_allocated()` the peak: watch it when you raise the
# batch size. On a CPU there is no such counter; the arithmetic still tells you the size.

# %%
activations = torch.zeros(64, 32, 16, 16)  # a batch of 64 feature maps
assert activations.numel() * activations.element_size() == 64 * 32 * 16 * 16 * 4
print(f"{activations.numel() * activations.element_size() / 2**20:.1f} MiB for 64 x 32 x 16 x 16")
if torch.cuda.is_available():
    before = torch.cuda.memory_allocated()
    on_gpu = activations.to("cuda")
    assert torch.cuda.memory_allocated() - before >= on_gpu.numel() * 4
    print(f"GPU memory allocated: {torch.cuda.memory_allocated() / 2**20:.1f} MiB")
else:
    print("no CUDA GPU: torch.cuda.memory_allocated() is shown on a GPU machine")

print("lesson 1: every assertion held")
