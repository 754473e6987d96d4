"""The training loop written out in plain PyTorch: everything Lightning's Trainer does for us.

    python -m project.manual fit --config configs/cnn.yaml
    python -m project.manual test --config configs/cnn.yaml --ckpt_path PATH/TO/last.ckpt

It trains the same network (``classifier.network``, a plain nn.Module from project/models/) on the
same DataLoaders (project/data/datamodule.py) with the same optimizer and schedule
(project/optim.py) as ``python -m project fit``. Only the loop differs, and each step of it says
what Lightning does there instead ("Lightning: ..."). Read it next to project/classifier.py.
tests/test_manual.py proves the two loops end with the same weights.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter

from project.checkpoints import (
    CheckpointError,
    fill_network,
    load_checkpoint,
    newest_last_checkpoint,
    restore_rng_states,
    rng_states,
    save_atomic,
)
from project.classifier import ImageClassifier, ResNetClassifier, prepare_network
from project.data.datamodule import ImageDataModule
from project.figures import confusion_matrix
from project.manual import distributed
from project.manual.settings import CheckpointSettings, EarlyStoppingSettings, LoopSettings
from project.monitoring import (
    FINAL_METRICS,
    GRID_IMAGES,
    hyperparameters,
    write_hyperparameters,
    write_validation_figures,
)
from project.optim import build_optimizer, build_scheduler

LOOP_FORMAT = "project.manual"  # marks our checkpoints, so a Lightning .ckpt is never resumed here


class TrainingInterrupted(Exception):
    """SIGTERM or Ctrl-C stopped training after a step; last.ckpt holds that step."""


@contextlib.contextmanager
def stop_requests():
    """SIGTERM and Ctrl-C ask the loop to stop after the current step (a dict flag it reads).

    Lightning: its signal connector does this for SIGTERM, and catches KeyboardInterrupt.
    Handlers can only be installed from the main thread; elsewhere the default behaviour stays.
    """
    request = {"signal": None}

    def ask_to_stop(signum, frame):
        request["signal"] = signal.Signals(signum).name

    signals = (signal.SIGTERM, signal.SIGINT)
    try:
        previous = {s: signal.signal(s, ask_to_stop) for s in signals}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass
class History:
    """What happened, step by step and epoch by epoch (the tests and project/compare.py read it)."""

    step_losses: list[float] = field(default_factory=list)
    step_lrs: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)


@dataclass
class FitResult:
    history: History
    log_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None


# ---------------------------------------------------------------------------- small pieces


def autocast(settings: LoopSettings) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass and the loss (Lightning: the precision plugin)."""
    if settings.precision == "32-true":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if settings.precision == "bf16-mixed" else torch.float16
    return torch.autocast(settings.device.type, dtype=dtype)


def loss_function(classifier: ImageClassifier):
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # float(): under mixed precision the logits may be bf16/fp16; the loss is taken in fp32.
        smoothing = classifier.hparams.label_smoothing
        return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)

    return loss


def total_training_steps(batches_per_epoch: int, settings: LoopSettings) -> int:
    """Lightning: trainer.estimated_stepping_batches (the length of a per-step LR schedule)."""
    steps = batches_per_epoch * settings.max_epochs
    return steps if settings.max_steps == -1 else min(steps, settings.max_steps)


def lightning_hyperparameters(classifier: ImageClassifier) -> dict:
    """The model's init arguments (plain values), keyed as LightningCLI writes them.

    With ``_class_path`` and ``_instantiator``, ``python -m project test --ckpt_path`` and
    ``CNNClassifier.load_from_checkpoint`` rebuild the model from a manual checkpoint too.
    """
    model_class = type(classifier)
    return {
        "_class_path": f"{model_class.__module__}.{model_class.__qualname__}",
        **classifier.hparams,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
    }


def is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def checkpoint_name(pattern: str, epoch: int, step: int, metrics: dict[str, float]) -> str:
    """ModelCheckpoint's filename pattern, e.g. best-epoch{epoch:02d}-val_acc{val/acc:.4f}."""
    return pattern.format(epoch=epoch, step=step, **metrics) + ".ckpt"


def next_log_dir(settings: LoopSettings) -> Path:
    """A new folder per run, beside Lightning's version_<n> (Lightning: TensorBoardLogger)."""
    if settings.log_folder is not None:
        return settings.log_root / settings.log_folder
    taken = [
        int(path.name.rsplit("_", 1)[1])
        for path in settings.log_root.glob("manual_version_*")
        if path.name.rsplit("_", 1)[1].isdigit()
    ]
    return settings.log_root / f"manual_version_{max(taken, default=-1) + 1}"


def find_last_checkpoint(settings: LoopSettings) -> Path:
    """``--resume last``: the most recently written last.ckpt of this run name's manual runs."""
    folders = sorted(settings.log_root.glob("manual_version_*"))
    if settings.log_folder is not None:
        folders.append(next_log_dir(settings))
    return newest_last_checkpoint(folders, f"{settings.log_root}/manual_version_*")


# ---------------------------------------------------------------------------- evaluation


def evaluate(
    network: nn.Module,
    loader: DataLoader,
    loss_fn,
    settings: LoopSettings,
    num_classes: int,
    max_batches: int | None = None,
) -> dict:
    """Mean loss and accuracy over ``loader`` (Lightning: the validation/test loop), with the
    confusion matrix and the first batch's (images, predicted, labels) for the pictures."""
    network.eval()  # dropout off, BatchNorm uses its running statistics (Lightning: model.eval())
    total_loss, correct, seen = 0.0, 0, 0
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    first_batch = None
    with torch.no_grad():  # no graph is kept: less memory, faster (Lightning: inference_mode)
        for batch_index, (images, labels) in enumerate(loader):
            if max_batches is not None and batch_index >= max_batches:
                break
            images = images.to(settings.device, non_blocking=True)
            labels = labels.to(settings.device, non_blocking=True)
            with autocast(settings):
                logits = network(images)
                loss = loss_fn(logits, labels)
            # Weighted by batch size, as Lightning averages self.log(..., on_epoch=True) values.
            total_loss += loss.item() * len(labels)
            predicted = logits.argmax(dim=1)
            correct += (predicted == labels).sum().item()
            seen += len(labels)
            counts += confusion_matrix(predicted.cpu(), labels.cpu(), num_classes)
            if first_batch is None:
                first_batch = tuple(t[:GRID_IMAGES].cpu() for t in (images, predicted, labels))
    # Several processes: each saw its share; the metrics are over all of them (Lightning:
    # self.log(..., sync_dist=True) and torchmetrics do this).
    total_loss, correct, seen, counts = distributed.sum_over_processes(
        total_loss, correct, seen, counts
    )
    return {
        "loss": total_loss / max(seen, 1),
        "acc": correct / max(seen, 1),
        "confusion": counts.long(),
        "first_batch": first_batch,
    }


# ---------------------------------------------------------------------------- training


def fit(
    settings: LoopSettings,
    data: ImageDataModule,
    classifier: ImageClassifier,
    resume: str | Path | None = None,
    config: dict | None = None,
    stop_request: dict | None = None,
) -> FitResult:
    """Train ``classifier.network`` on ``data``; returns the history and checkpoint paths.

    ``stop_request``: the flag ``stop_requests()`` sets on SIGTERM / Ctrl-C (see __main__.py).
    """
    # ---- set-up (Lightning: Trainer(...) and the start of trainer.fit) ------------------------
    # One process, or one of several started by torchrun (project/manual/distributed.py).
    device = distributed.start(settings.device)
    main_process = distributed.rank() == 0
    say = print if main_process else (lambda *args, **kwargs: None)
    if settings.deterministic:
        torch.use_deterministic_algorithms(True)  # Lightning: Trainer(deterministic=True)
    data.prepare_data()  # Lightning calls prepare_data() and setup("fit") on the DataModule
    data.setup("fit")
    # With several processes each gets its share of the data (the same seed on every process).
    train_loader = distributed.shard(data.train_dataloader(), True, torch.initial_seed() % 2**31)
    val_loader = distributed.shard(data.val_dataloader(), shuffle=False)

    network = classifier.network.to(device)  # Lightning: moves the LightningModule to the device
    # channels_last / torch.compile when the config asks (Lightning: configure_model).
    prepare_network(network, classifier.hparams.channels_last, classifier.hparams.compile)
    if isinstance(classifier, ResNetClassifier) and resume is None:
        # Pretrained backbone weights (Lightning: ResNetClassifier.setup("fit")); when resuming,
        # the checkpoint holds newer ones.
        network.load_backbone(classifier.hparams.weights, classifier.hparams.download)
    hp = classifier.hparams
    loss_fn = loss_function(classifier)
    classes = hp.num_classes

    # Lightning: configure_optimizers(); the same builders, so the same optimizer and schedule.
    groups = classifier.param_groups()  # named: "model", or "backbone" and "head"
    optimizer = build_optimizer(groups, hp.optimizer, hp.weight_decay, hp.momentum)
    scheduler, interval = build_scheduler(
        optimizer,
        hp.schedule,
        total_steps=total_training_steps(len(train_loader), settings),
        warmup_fraction=hp.warmup_fraction,
        step_epochs=hp.step_epochs,
        gamma=hp.gamma,
    )
    # float16 gradients can underflow to zero: the scaler multiplies the loss before backward and
    # divides the gradients after. bfloat16 and float32 do not need it (enabled=False: no-op).
    scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "16-mixed")

    # ---- the run's state: what a checkpoint must hold to continue exactly ------------------------
    epoch, global_step = 0, 0
    best_score: float | None = None  # ModelCheckpoint's best monitored value
    best_path: Path | None = None
    latest_path: Path | None = None
    stop_best: float | None = None  # EarlyStopping's best value and epochs without improvement
    stop_wait = 0
    history = History()
    resume_from = None
    if resume is not None:
        resume_from = find_last_checkpoint(settings) if str(resume) == "last" else Path(resume)
        # map_location="cpu": the random-generator states must stay CPU tensors; the weights are
        # copied onto the device by load_state_dict. weights_only=True inside load_checkpoint.
        state = load_checkpoint(resume_from, map_location="cpu")
        if state.get("loop") != LOOP_FORMAT:
            raise CheckpointError(
                f"{resume_from}: not a manual-loop checkpoint (resume a Lightning .ckpt with "
                f"python -m project fit --ckpt_path)"
            )
        fill_network(network, state["model"], resume_from)  # strict: same architecture only
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        epoch, global_step = state["epoch"], state["global_step"]
        best_score, best_path = state["best_score"], state["best_path"]
        stop_best, stop_wait = state["stop_best"], state["stop_wait"]
        best_path = Path(best_path) if best_path else None
        say(f"resumed from {resume_from}: epoch {epoch}, step {global_step}")

    log_dir = next_log_dir(settings)
    checkpoint_dir = log_dir / "checkpoints"
    distributed.barrier()  # every process has named the folder before process 0 creates it
    # Lightning: TensorBoardLogger (the same tag names below), written by process 0 only.
    writer = SummaryWriter(log_dir) if main_process else distributed.NoWriter()
    say(f"logging to {log_dir}")
    if settings.hyperparameters and main_process:  # Lightning: HyperparametersWithMetrics
        params = hyperparameters(dict(hp), dict(data.hparams), type(classifier))
        write_hyperparameters(writer, params, {name: 0.0 for name in FINAL_METRICS})

    def save(path: Path, metrics: dict[str, float], mid_epoch: dict | None = None) -> Path:
        """Everything needed to continue exactly (Lightning: trainer.save_checkpoint)."""
        if not main_process:  # one writer; every process holds the same weights
            return path
        checkpoint = {
            "loop": LOOP_FORMAT,
            "model": network.state_dict(),  # the plain network's own keys: no "network." prefix
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,  # epochs completed
            "global_step": global_step,
            "best_score": best_score,
            "best_path": str(best_path) if best_path else None,
            "stop_best": stop_best,
            "stop_wait": stop_wait,
            "metrics": metrics,
            # Set when a signal stopped the run inside an epoch: where in the epoch, and the
            # random state at the epoch's start, which replays the same data order on resume.
            "mid_epoch": mid_epoch,
            "rng_states": rng_states(),
            "hyper_parameters": lightning_hyperparameters(classifier),
            # Lightning's loader reads this key to decide on format migrations; with it, the
            # Lightning Trainer can validate/test/predict from this file too.
            "pytorch-lightning_version": lightning.__version__,
            "inference": data.inference_settings(),  # class names, image size, normalization
            "config": config or {},
        }
        return save_atomic(checkpoint, path)  # temporary file, fsync, rename: never half-written

    # ---- sanity check (Lightning: num_sanity_val_steps) ---------------------------------------
    # A couple of validation batches before the first epoch, so a bug in validation shows up in
    # seconds, not after a whole epoch. fork_rng: it must not change the training's random draws.
    if settings.num_sanity_val_steps and epoch == 0:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            evaluate(network, val_loader, loss_fn, settings, classes, settings.num_sanity_val_steps)
    mid_epoch = None  # where a signal stopped the previous run inside an epoch
    if resume_from is not None:
        # Restored last: the shuffles, augmentations and dropout masks continue the old sequence.
        mid_epoch = state["mid_epoch"]
        restore_rng_states(mid_epoch["epoch_start_rng"] if mid_epoch else state["rng_states"])

    # ---- the epochs (Lightning: fit_loop) -----------------------------------------------------
    stop_reason = "max_epochs"
    while epoch < settings.max_epochs:
        if settings.max_steps != -1 and global_step >= settings.max_steps:
            stop_reason = "max_steps"
            break
        epoch_started = time.perf_counter()
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, same on all processes
        if isinstance(classifier, ResNetClassifier):
            # Frozen for the first epochs, then fine-tuned (Lightning: on_train_epoch_start).
            network.set_backbone_frozen(classifier.frozen_at(epoch))
        # DDP registers the trainable parameters when it wraps: wrap at each epoch's start, so
        # an unfrozen backbone is synchronized too (the plain network when single-process).
        model = distributed.wrap(network, device)
        network.train()  # dropout on, BatchNorm learns batch statistics (Lightning: model.train())
        train_loss_sum, train_correct, train_seen = 0.0, 0, 0
        epoch_start_rng = rng_states()  # kept for a mid-epoch checkpoint
        skip = 0
        if mid_epoch:  # resuming inside this epoch
            skip = mid_epoch["batches_done"]
            train_loss_sum, train_correct, train_seen = mid_epoch["train_sums"]

        for batch_index, (images, labels) in enumerate(train_loader):  # new order every epoch
            if batch_index < skip:
                # These batches were trained before the stop. Fetching them again replays the
                # data order (and any per-image augmentation); then the random state of the
                # stop takes over, for the batch augmentation and dropout still to come.
                if batch_index == skip - 1:
                    restore_rng_states(state["rng_states"])
                continue
            # One device for the model and the batch (Lightning: transfer_batch_to_device).
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            # Augmentation that runs per batch on the device (Lightning: on_after_batch_transfer).
            images = data.augment_batch(images)
            if hp.channels_last:  # NHWC batches for NHWC weights (Lightning: in forward)
                images = images.contiguous(memory_format=torch.channels_last)
            learning_rates = {group["name"]: group["lr"] for group in optimizer.param_groups}

            # Forget the previous batch's gradients; None instead of zeros saves a memset.
            # Lightning: optimizer.zero_grad() inside its training closure.
            optimizer.zero_grad(set_to_none=True)
            with autocast(settings):  # Lightning: the precision plugin wraps training_step
                logits = model(images)
                loss = loss_fn(logits, labels)
            loss_value = loss.item()
            # Stop before a NaN reaches the weights (all processes together).
            if distributed.any_process(not math.isfinite(loss_value)):
                writer.close()
                raise FloatingPointError(
                    f"loss is {loss_value} at epoch {epoch}, step {global_step}: training stopped"
                )
            # Lightning: the closure calls backward on what training_step returns.
            scaler.scale(loss).backward()
            if settings.gradient_clip_val:  # Lightning: Trainer(gradient_clip_val=...)
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                if settings.gradient_clip_algorithm == "value":
                    nn.utils.clip_grad_value_(network.parameters(), settings.gradient_clip_val)
                else:
                    nn.utils.clip_grad_norm_(network.parameters(), settings.gradient_clip_val)
            scaler.step(optimizer)  # skips the step if float16 gradients overflowed
            scaler.update()
            if interval == "step":
                scheduler.step()  # per-batch schedules (Lightning: lr_scheduler interval "step")
            global_step += 1

            history.step_losses.append(loss_value)
            history.step_lrs.append(learning_rates)
            train_loss_sum += loss_value * len(labels)
            train_correct += (logits.argmax(dim=1) == labels).sum().item()
            train_seen += len(labels)
            if global_step % settings.log_every_n_steps == 0:  # Lightning: log_every_n_steps
                writer.add_scalar("train/loss", loss_value, global_step - 1)
                for name, lr in learning_rates.items():  # Lightning: LearningRateMonitor
                    writer.add_scalar(f"lr/{name}", lr, global_step - 1)
            # SIGTERM or Ctrl-C during this step (in any process: all stop at the same step)
            if distributed.any_process(bool(stop_request and stop_request["signal"])):
                mid_epoch = {
                    "batches_done": batch_index + 1,
                    "train_sums": (train_loss_sum, train_correct, train_seen),
                    "epoch_start_rng": epoch_start_rng,
                }
                path = save(checkpoint_dir / "last.ckpt", {}, mid_epoch)
                writer.close()
                raise TrainingInterrupted(
                    f"stopped by {(stop_request or {}).get('signal') or 'a signal elsewhere'} at "
                    f"epoch {epoch}, step {global_step}; "
                    f"saved {path}: continue with --resume last"
                )
            if settings.max_steps != -1 and global_step >= settings.max_steps:
                break
        mid_epoch = None

        if interval == "epoch":
            scheduler.step()  # per-epoch schedules (Lightning: lr_scheduler interval "epoch")

        # ---- validation (Lightning: validation_step over val_dataloader, then the callbacks)
        val = evaluate(network, val_loader, loss_fn, settings, classes)
        epoch += 1
        loss_sum, correct, seen = distributed.sum_over_processes(
            train_loss_sum, train_correct, train_seen
        )
        metrics = {
            "train/loss": loss_sum / max(seen, 1),
            "train/acc": correct / max(seen, 1),
            "val/loss": val["loss"],
            "val/acc": val["acc"],
        }
        metrics["time/epoch_seconds"] = time.perf_counter() - epoch_started
        history.epochs.append(metrics)
        for tag in ("train/acc", "val/loss", "val/acc", "time/epoch_seconds"):
            writer.add_scalar(tag, metrics[tag], global_step - 1)
        writer.add_scalar("epoch", epoch - 1, global_step - 1)
        if settings.validation_figures:  # Lightning: the ValidationFigures callback
            write_validation_figures(
                writer, global_step - 1, val["confusion"], val["first_batch"],
                data.class_names, *data.normalization(),
            )  # fmt: skip
        say(
            f"epoch {epoch - 1:3d}  train/loss {metrics['train/loss']:.4f}  "
            f"train/acc {metrics['train/acc']:.4f}  val/loss {val['loss']:.4f}  "
            f"val/acc {val['acc']:.4f}  ({metrics['time/epoch_seconds']:.1f} s)"
        )

        # ---- early stopping (Lightning: EarlyStopping) ---------------------------------------
        # Decided before the checkpoints are written (Lightning runs ModelCheckpoint last), so a
        # checkpoint holds the up-to-date patience count and resuming stops at the same epoch.
        stop: EarlyStoppingSettings | None = settings.early_stopping
        should_stop = False
        if stop is not None:
            if is_better(metrics[stop.monitor], stop_best, stop.mode, stop.min_delta):
                stop_best, stop_wait = metrics[stop.monitor], 0
            else:
                stop_wait += 1
                should_stop = stop_wait >= stop.patience

        # ---- best and last checkpoints (Lightning: ModelCheckpoint) --------------------------
        keep: CheckpointSettings | None = settings.checkpoint
        if keep is not None:
            improved = is_better(metrics[keep.monitor], best_score, keep.mode)
            name = checkpoint_name(keep.filename, epoch - 1, global_step, metrics)
            if improved:
                best_score = metrics[keep.monitor]
            if keep.save_top_k == -1:  # every epoch's file is kept
                path = save(checkpoint_dir / name, metrics)
                best_path = path if improved else best_path
            elif keep.save_top_k == 1 and improved:  # only the best: the previous best goes
                previous, best_path = best_path, checkpoint_dir / name
                save(best_path, metrics)
                if previous is not None and previous != best_path:
                    previous.unlink(missing_ok=True)
        if settings.latest_filename:  # the file to resume from (the configs name it last.ckpt)
            previous, latest_path = (
                latest_path,
                checkpoint_dir
                / checkpoint_name(settings.latest_filename, epoch - 1, global_step, metrics),
            )
            save(latest_path, metrics)
            if previous is not None and previous != latest_path:
                previous.unlink(missing_ok=True)
        if should_stop:
            stop_reason = f"early stopping: no {stop.monitor} improvement in {stop.patience} epochs"
            break

    if settings.hyperparameters and history.epochs:  # the run's results for the HPARAMS tab
        best_val_acc = max(metrics["val/acc"] for metrics in history.epochs)
        final = (best_val_acc, history.epochs[-1]["val/loss"])
        for name, value in zip(FINAL_METRICS, final, strict=True):
            writer.add_scalar(name, value, global_step - 1)
    writer.close()
    say(f"stopped after epoch {epoch - 1} ({stop_reason}); best checkpoint: {best_path}")
    distributed.barrier()  # process 0 has written its last file before any process returns
    return FitResult(history, log_dir, best_path, latest_path)
