# %% [markdown]
# # Lesson 3: nn.Module
#
# Concept phase. `python lessons/03_modules.py`, or open it as a notebook. Every claim is
# asserted.
#
# What you learn: how a module finds its parameters, `Sequential`, why a plain Python list of
# layers is invisible to PyTorch while `ModuleList` is not, `ModuleDict`, why you call `model(x)`
# and not `model.forward(x)` (hooks), and what `train()` and `eval()` change (dropout and
# BatchNorm). This answers the self-assessment question "what do train() and eval() do".

# %%
import torch
from torch import nn

from project.models.cnn import SmallCNN

torch.manual_seed(0)


def count(module: nn.Module) -> int:
    """The number of values in a module's parameters, trainable or frozen (``requires_grad``
    is not looked at: a frozen backbone counts too)."""
    return sum(p.numel() for p in module.parameters())


# %% [markdown]
# ## Parameters
# A layer assigned as an attribute in `__init__` is registered: its weights appear in
# `parameters()`, so the optimizer sees them, `.to(device)` moves them and `state_dict()` saves
# them.


# %%
class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)  # 4 x 8 weights + 8 biases = 40
        self.out = nn.Linear(8, 2)  # 8 x 2 + 2 = 18

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


model = TwoLayers()
print([name for name, _ in model.named_parameters()])
assert count(model) == 40 + 18
assert model(torch.randn(5, 4)).shape == (5, 2)

# %% [markdown]
# ## Sequential
# When the forward pass is a straight chain, `nn.Sequential` writes it for you.

# %%
chain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
assert count(chain) == count(model)
assert chain(torch.randn(5, 4)).shape == (5, 2)

# %% [markdown]
# ## A plain Python list vs ModuleList
# Layers kept in a plain list are **not registered**: the optimizer never sees their weights,
# `.to()` does not move them, `state_dict()` does not save them. Nothing warns you. `nn.ModuleList`
# registers each layer.


# %%
class WithList(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(3)]  # a plain list: invisible


class WithModuleList(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))


plain, registered = WithList(), WithModuleList()
print("parameters: plain list", count(plain), "| ModuleList", count(registered))
assert count(plain) == 0
assert count(registered) == 3 * (4 * 4 + 4)
plain.to(torch.float64)  # .to() moves and converts registered parameters only
registered.to(torch.float64)
assert plain.layers[0].weight.dtype == torch.float32, "the plain list was left behind"
assert registered.layers[0].weight.dtype == torch.float64
assert len(plain.state_dict()) == 0 and len(registered.state_dict()) == 6

# %% [markdown]
# ## ModuleDict
# Layers by name, for example one head per task; registered like ModuleList.

# %%
heads = nn.ModuleDict({"digit": nn.Linear(8, 10), "parity": nn.Linear(8, 2)})
features = torch.randn(3, 8)
assert heads["digit"](features).shape == (3, 10) and heads["parity"](features).shape == (3, 2)
assert count(heads) == (8 * 10 + 10) + (8 * 2 + 2)

# %% [markdown]
# ## forward() vs __call__(): hooks
# `forward()` defines the computation; `model(x)` calls `__call__`, which runs the registered
# hooks around `forward()`. Lightning, profilers and feature extractors rely on hooks, so always
# call `model(x)`.

# %%
calls = []
handle = chain.register_forward_hook(lambda module, inputs, output: calls.append(output.shape))
x = torch.randn(2, 4)
chain(x)
assert len(calls) == 1, "model(x) ran the hook"
chain.forward(x)
assert len(calls) == 1, "model.forward(x) skipped the hook"
handle.remove()
print("hook calls:", calls)

# %% [markdown]
# ## train() and eval(): dropout
# In training mode dropout zeroes a random share of activations and scales the rest by
# 1 / (1 - p); in eval mode it passes everything through unchanged.

# %%
dropout = nn.Dropout(p=0.5)
ones = torch.ones(1000)
dropout.train()
dropped = dropout(ones)
zeroed = (dropped == 0).float().mean().item()
print(f"train mode: {zeroed:.0%} zeroed, the rest scaled to {dropped.max().item()}")
assert 0.4 < zeroed < 0.6 and dropped.max().item() == 2.0
dropout.eval()
assert torch.equal(dropout(ones), ones), "eval mode: dropout does nothing"

# %% [markdown]
# ## train() and eval(): BatchNorm
# In training mode BatchNorm normalizes with the **batch's** statistics and updates its running
# averages; in eval mode it uses the running averages and changes nothing. Validating in training
# mode would both give different outputs and leak validation data into the running statistics.

# %%
norm = nn.BatchNorm1d(3)
batch = torch.randn(16, 3) * 5 + 2
norm.train()
out_train = norm(batch)
assert torch.allclose(out_train.mean(dim=0), torch.zeros(3), atol=1e-5)  # batch statistics
running = norm.running_mean.clone()
assert not torch.equal(running, torch.zeros(3)), "training mode updated the running mean"
norm.eval()
out_eval = norm(batch)
assert torch.equal(norm.running_mean, running), "eval mode leaves the running mean alone"
assert not torch.allclose(out_eval, out_train), "and normalizes with it instead"

# %% [markdown]
# ## The project's network
# `SmallCNN` (project/models/cnn.py) is built from exactly these parts: `Sequential` blocks of
# conv, BatchNorm, ReLU and pooling, a dropout + linear head. `train()`/`eval()` on the model
# reach every sub-module.

# %%
cnn = SmallCNN(num_classes=10)
images = torch.randn(4, 3, 16, 16)
assert cnn(images).shape == (4, 10)  # (batch, classes): one row of logits per image
print(f"SmallCNN: {count(cnn):,} parameters")
assert count(cnn) == count(cnn.backbone) + count(cnn.head)
cnn.eval()
assert all(not m.training for m in cnn.modules())
with torch.no_grad():
    assert torch.equal(cnn(images), cnn(images)), "eval mode: the same input, the same output"

print("lesson 3: every assertion held")
