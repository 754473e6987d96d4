# %% [markdown]
# # Lesson 5: the same model under Lightning
#
# Demo phase. `python lessons/05_lightning.py` (importing Lightning takes a few seconds), or open
# it as a notebook. The `SmallCNN` of lesson 4, on the same digits, as a `LightningModule` driven
# by a `Trainer`, with the project's `ImageDataModule` for the data.
#
# Compare with lesson 4: you write *what* happens to a batch (`training_step`,
# `validation_step`, `configure_optimizers`); the Trainer writes the loop: `model.train()` /
# `model.eval()`, moving batches to the device, `zero_grad()` / `backward()` / `step()`,
# `torch.no_grad()` for validation. The asserts inside the steps prove that it did.
# The project's full version of this module is `CNNClassifier` in project/lit/classifier.py
# (metrics, checkpoints, mixed precision: `make train`), a thin adapter around the plain recipe
# in project/core/recipe.py (loss, optimizer, LR schedule), which the manual loop runs too.

# %%
import project  # noqa: F401  first: its CPU thread rule must be set before torch loads

# isort: split
import warnings

import lightning as L
import torch
import torch.nn.functional as F

from project.lit.datamodule import ImageDataModule
from project.models.cnn import SmallCNN

EPOCHS, TARGET = 3, 0.95
warnings.filterwarnings("ignore", ".*does not have many workers.*")  # in-memory data: 0 workers
L.seed_everything(0, verbose=False)

# %% [markdown]
# ## The LightningModule: the steps, not the loop


# %%
class DigitClassifier(L.LightningModule):
    def __init__(self, lr: float = 3e-3):
        super().__init__()
        self.network = SmallCNN(num_classes=10)  # the same plain nn.Module as lesson 4
        self.lr = lr

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def training_step(self, batch, batch_index):
        images, labels = batch
        # Lightning switched to train mode and moved the batch to the model's device.
        assert self.training and images.device == self.device
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss)
        return loss  # Lightning calls zero_grad(), backward() and step() with it

    def validation_step(self, batch, batch_index):
        images, labels = batch
        # Lightning switched to eval mode and turned gradients off for validation.
        assert not self.training and not torch.is_grad_enabled()
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels))
        # The batch's mean; Lightning's epoch value weights each batch by its size (below).
        self.log("val/acc", (logits.argmax(dim=1) == labels).float().mean())

    def test_step(self, batch, batch_index):
        images, labels = batch
        self.log("test/acc", (self(images).argmax(dim=1) == labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


# %% [markdown]
# ## The data: the project's LightningDataModule
# Bundled digits, split train/val/test once with a seed, normalization measured on the training
# split, images decoded once into memory; the same split as lesson 4.

# %%
data = ImageDataModule(augmentation="none", cache_images=True, num_workers=0, batch_size=64)

# %% [markdown]
# ## The Trainer writes the loop
# `accelerator="auto"` picks a GPU when there is one, else the CPU: the same script runs on both.

# %%
model = DigitClassifier()
trainer = L.Trainer(
    max_epochs=EPOCHS,
    accelerator="auto",
    devices=1,
    logger=False,  # `make train` logs to TensorBoard; this lesson prints
    enable_checkpointing=False,  # `make train` keeps the best and the last checkpoint
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)
trainer.fit(model, datamodule=data)
accuracy = trainer.callback_metrics["val/acc"].item()
print(f"after {trainer.current_epoch} epochs: val accuracy {accuracy:.3f}")
assert trainer.current_epoch == EPOCHS
assert accuracy >= TARGET, f"expected at least {TARGET} validation accuracy, got {accuracy}"

# %% [markdown]
# ## val/acc: a mean of batch means, weighted by batch size
# `validation_step` logged each batch's mean accuracy. At the end of the epoch Lightning averaged
# those means weighted by each batch's size (read from the batch; `self.log(..., batch_size=n)`
# says it where it cannot), so `val/acc` is the share of all validation images that were right:
# exercise 2's count. A plain mean of the batch means would weigh the smaller last batch's images
# more (the mistake exercise 2's checker names).

# %%
model.eval()
with torch.no_grad():
    batches = [
        ((model(x.to(model.device)).argmax(dim=1) == y.to(model.device)).sum().item(), len(y))
        for x, y in data.val_dataloader()
    ]
over_images = sum(right for right, _ in batches) / sum(n for _, n in batches)
mean_of_means = sum(right / n for right, n in batches) / len(batches)
print(
    f"batch sizes {[n for _, n in batches]}: over images {over_images:.4f}, "
    f"plain mean of batch means {mean_of_means:.4f}, Lightning's val/acc {accuracy:.4f}"
)
assert batches[-1][1] < batches[0][1]  # the last batch is smaller: the weighting matters
assert abs(accuracy - over_images) < 1e-6

# %% [markdown]
# ## What the Trainer did that lesson 4 wrote by hand
# The optimizer stepped once per training batch; the model ends in eval mode after validation;
# the test split, never used above, is one call away.

# %%
steps_per_epoch = len(data.train_dataloader())
assert trainer.global_step == EPOCHS * steps_per_epoch
test_accuracy = trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"]
print(f"test accuracy: {test_accuracy:.3f} (images never seen in training or validation)")
assert test_accuracy >= TARGET

print("lesson 5: every assertion held")
