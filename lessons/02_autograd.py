# %% [markdown]
# # Lesson 2: autograd
#
# Concept phase. `python lessons/02_autograd.py`, or open it as a notebook. Every claim is
# asserted.
#
# What you learn: how PyTorch records a graph of operations on tensors with
# `requires_grad=True`, how `backward()` fills `.grad`, why gradients **accumulate** (and so why
# a training loop calls `optimizer.zero_grad()` every step), and how `torch.no_grad()` and
# `detach()` stop the recording. This answers the self-assessment question "explain autograd".

# %%
import torch

# %% [markdown]
# ## The graph
# Every operation on a tensor that requires gradients is recorded: the result remembers the
# function that made it (`grad_fn`). Tensors you create yourself are the leaves of the graph.

# %%
w = torch.tensor(3.0, requires_grad=True)
b = torch.tensor(1.0, requires_grad=True)
x = torch.tensor(2.0)  # data: no gradient wanted
y = w * x + b  # y = 3 * 2 + 1 = 7
loss = (y - 10) ** 2  # (7 - 10)^2 = 9
print("loss:", loss.item(), "made by", type(loss.grad_fn).__name__)
assert loss.item() == 9.0
assert w.is_leaf and b.is_leaf and not y.is_leaf
assert loss.grad_fn is not None and x.grad_fn is None

# %% [markdown]
# ## backward() fills .grad
# `loss.backward()` walks the graph back and stores d loss / d leaf in each leaf's `.grad`.
# By hand: d loss / d w = 2 (y - 10) x = 2 * (-3) * 2 = -12, and d loss / d b = 2 (y - 10) = -6.

# %%
assert w.grad is None  # nothing computed yet
loss.backward()
print("w.grad:", w.grad.item(), "b.grad:", b.grad.item())
assert w.grad.item() == -12.0 and b.grad.item() == -6.0
assert x.grad is None  # x did not require gradients

# %% [markdown]
# ## Gradients accumulate
# A second `backward()` **adds** to `.grad` instead of replacing it. This is on purpose (it lets
# you sum gradients over several small batches), and it is why every training step clears them
# first: without `zero_grad()` each step would also use every earlier batch's gradients.

# %%
loss = ((w * x + b) - 10) ** 2  # the same computation, a new graph
loss.backward()
print("after a second backward, w.grad:", w.grad.item())
assert w.grad.item() == 2 * -12.0, "the gradient doubled"
assert b.grad.item() == 2 * -6.0

w.grad = None  # what optimizer.zero_grad() does (set_to_none=True, the default)
b.grad = None
loss = ((w * x + b) - 10) ** 2
loss.backward()
assert w.grad.item() == -12.0, "cleared first, the gradient is this step's only"

# %% [markdown]
# ## One gradient-descent step by hand
# An optimizer does `w -= lr * w.grad` for every parameter. The update itself must not be
# recorded, hence `torch.no_grad()`.

# %%
lr = 0.05
before = ((w * x + b) - 10) ** 2
with torch.no_grad():
    w -= lr * w.grad
    b -= lr * b.grad
after = ((w * x + b) - 10) ** 2
print(f"loss before the step {before.item():.3f}, after {after.item():.3f}")
assert after.item() < before.item()

# %% [markdown]
# ## no_grad: inference without a graph
# Under `torch.no_grad()` nothing is recorded: results have no `grad_fn`, no memory is kept for a
# backward pass. Use it for validation and prediction.

# %%
with torch.no_grad():
    prediction = w * x + b
assert prediction.grad_fn is None and not prediction.requires_grad
recorded = w * x + b
assert recorded.requires_grad

# %% [markdown]
# ## detach: the same numbers, cut off from the graph
# `t.detach()` shares memory with `t` but is not recorded; gradients do not flow through it.
# Use it to log a value, or to keep part of a computation fixed.

# %%
y = w * x + b
y_fixed = y.detach()
assert not y_fixed.requires_grad and y_fixed.data_ptr() == y.data_ptr()  # same memory
w.grad = None
(y * y_fixed).backward()  # gradient flows through y only: d/dw = x * y_fixed
assert torch.isclose(w.grad, x * y_fixed)

# %% [markdown]
# ## The same with a module and an optimizer
# `nn.Linear` holds `weight` and `bias` with `requires_grad=True`; the optimizer holds them too.
# The order in every training step: `zero_grad()`, forward, loss, `backward()`, `step()`.

# %%
torch.manual_seed(0)
layer = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
inputs, targets = torch.randn(8, 3), torch.randn(8, 1)
losses = []
for _ in range(20):
    optimizer.zero_grad()
    step_loss = torch.nn.functional.mse_loss(layer(inputs), targets)
    step_loss.backward()
    optimizer.step()
    losses.append(step_loss.item())
print(f"loss: first step {losses[0]:.3f}, 20th step {losses[-1]:.3f}")
assert losses[-1] < losses[0]

print("lesson 2: every assertion held")
