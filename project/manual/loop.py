"""The training loop written out in plain PyTorch: what Lightning's Trainer does for us.

    python -m project.manual fit --config configs/cnn.yaml
    python -m project.manual test --config configs/cnn.yaml --ckpt_path PATH/TO/last.ckpt

Read it top to bottom next to project/lit/classifier.py. ``train_one_epoch()`` is one pass over the
training data (Lightning: its fit loop calling ``training_step``), ``evaluate()`` one pass over
validation or test data (``validation_step`` / ``test_step``), and ``fit()`` the whole run
(``trainer.fit()``). Each step says what Lightning does there instead ("Lightning: ...").
No Lightning is imported, here or in anything this loop uses.

It trains the same recipe (project/core/recipe.py: the network, a plain nn.Module from
project/models/, its loss, MixUp/CutMix, parameter groups, optimizer and schedule) on the same
DataLoaders (``ImageData``, project/data/pipeline.py) as ``python -m project fit``, whose
LightningModule wraps the same recipe; tests/test_manual.py proves the two loops end with
bit-identical weights. What keeps a long run safe lives in modules named for what they do:

    project/manual/run_state.py     what a checkpoint holds: save() and restore()
    project/manual/callbacks.py     EarlyStopping, BestCheckpoint, LatestCheckpoint
    project/manual/run_log.py       TensorBoard and console output
    project/manual/optimization.py  optimizer + schedule, mixed precision, gradient clipping
    project/manual/replay.py        resuming inside an epoch
    project/manual/signals.py       SIGTERM / Ctrl-C: save, then stop
    project/manual/distributed.py   several processes (torchrun)

The table "Lightning feature -> function here" is in project/manual/README.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from project.core.loss import check_finite
from project.core.metrics import EvaluationMetrics
from project.core.mixing import hard_labels
from project.core.optimizers import step_scheduler
from project.core.recipe import ClassifierRecipe
from project.core.steps import sum_dtype
from project.data.pipeline import ImageData
from project.data.streaming import loader_state as loader_state_of
from project.manual import distributed, replay
from project.manual.callbacks import BestCheckpoint, EarlyStopping, LatestCheckpoint
from project.manual.optimization import (
    autocast,
    batch_limit,
    clip_gradients,
    configure_optimizers,
    grad_scaler,
    sequential,
)
from project.manual.replay import MidEpoch
from project.manual.run_log import RunLog
from project.manual.run_state import History, RunState, checkpoint_identity, read_resume_checkpoint
from project.manual.settings import LoopSettings
from project.manual.signals import StopRequest, TrainingInterrupted
from project.runs.checkpoints import restore_rng_states, rng_states
from project.runs.tensorboard_extras import TopLosses, class_example_indices, predict_examples


@dataclass
class FitResult:
    history: History
    log_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None


# ---------------------------------------------------------------------------- one training epoch


def train_one_epoch(
    state: RunState,
    model: nn.Module,
    loader: DataLoader,
    classifier: ClassifierRecipe,
    data: ImageData,
    settings: LoopSettings,
    log: RunLog,
    stop_request: StopRequest | None = None,
    resume_at: MidEpoch | None = None,
) -> tuple[tuple[float, int, int], MidEpoch | None]:
    """One pass over ``loader``: returns the epoch's (loss sum, correct, seen), and where it
    stopped if a signal asked it to (Lightning: the fit loop, calling training_step per batch).

    ``model`` is the network, or the DDP wrapper around it when several processes train.
    """
    network, optimizer, scaler = state.network, state.optimizer, state.scaler
    network.train()  # dropout on, BatchNorm learns batch statistics (Lightning: model.train())
    optimizer.zero_grad(set_to_none=True)  # no gradient left from before (Lightning: the same)
    epoch_start_rng = rng_states()  # a mid-epoch checkpoint replays the data order from here
    # The epoch's sums stay on the device: adding to them reads nothing back (on a GPU, a read
    # waits for the GPU). They, and the step losses, are read once, at the end of the epoch.
    start = resume_at.train_sums if resume_at else (0.0, 0, 0)
    exact = sum_dtype(settings.device)  # float64 (float32 on MPS)
    loss_sum = torch.tensor(start[0], dtype=exact, device=settings.device)
    correct = torch.tensor(start[1], device=settings.device)
    seen, step_losses = start[2], []

    def read_sums() -> tuple[float, int, int]:
        state.history.step_losses.extend(torch.stack(step_losses).tolist() if step_losses else [])
        step_losses.clear()
        return loss_sum.item(), int(correct.item()), seen

    skip, stop_rng = (resume_at.batches_done, resume_at.stop_rng) if resume_at else (0, None)
    loader_state = resume_at.loader_state if resume_at else None  # data.shards: LitData's
    batches = batch_limit(len(loader), settings.limit_train_batches)  # Lightning: limit_train_...
    every = settings.accumulate_grad_batches  # one optimizer step every `every` batches

    for batch_index, (images, labels) in replay.batches(
        loader, skip, stop_rng, loader_state, limit=batches
    ):
        if batch_index >= batches:
            break
        # One device for the model and the batch (Lightning: transfer_batch_to_device).
        images = images.to(settings.device, non_blocking=True)
        labels = labels.to(settings.device, non_blocking=True)
        images = data.augment_batch(images)  # on the device (Lightning: on_after_batch_transfer)
        images, targets = classifier.mix(images, labels)  # MixUp / CutMix, when configured
        labels = hard_labels(targets)  # for accuracy (the labels themselves when not mixed)
        learning_rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
        # The last batch of an accumulation, or of the epoch: the optimizer steps after it.
        steps_now = (batch_index + 1) % every == 0 or batch_index + 1 == batches

        # ---- Lightning: training_step, and the optimizer closure around it
        with autocast(settings):  # mixed precision (Lightning: the precision plugin)
            logits = classifier.forward(images, model)
            loss = classifier.loss(logits, targets)
        check_finite(loss, state.epoch, state.global_step, distributed.any_process)  # NaN: stop
        # Accumulated gradients add up: each batch's share is loss / every (Lightning divides
        # the same way); with every = 1 this is the plain loss.
        scaler.scale(loss / every if every > 1 else loss).backward()  # scaled only under float16
        if steps_now:
            clip_gradients(network, optimizer, scaler, settings)  # Lightning: gradient_clip_val
            scaler.step(optimizer)  # the update (skipped if float16 gradients overflowed)
            scaler.update()
            # Forget these gradients before the next batch adds its own (set_to_none: no memset).
            optimizer.zero_grad(set_to_none=True)
            if state.interval == "step":
                step_scheduler(state.schedule)  # per-batch schedules (Lightning: "step")

        # ---- Lightning: self.log(...) and the logger
        loss_value = loss.detach()  # a device tensor: the logger reads it every n steps only
        step_losses.append(loss_value)
        state.history.step_lrs.append(learning_rates)
        loss_sum += loss_value.to(exact) * len(labels)  # float64: the sum a Python float made
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        seen += len(labels)
        if not steps_now:
            continue  # mid-accumulation: no step to log, count, or stop after
        log.step(state.global_step, loss_value, learning_rates, correct, seen)
        state.global_step += 1

        # SIGTERM or Ctrl-C during this step, in any process: all stop after the same step.
        if distributed.any_process(bool(stop_request)):
            sums = read_sums()
            # A stream (data.shards) also saves how far LitData's loader got (replay.py).
            return sums, MidEpoch(batch_index + 1, sums, epoch_start_rng,
                                  loader_state=loader_state_of(loader))  # fmt: skip
        if reached_max_steps(state, settings):
            break
    # Several processes: each holds BatchNorm statistics of its own last batch; all take process
    # 0's, so they validate the same model (Lightning: its validation forward through DDP does it).
    distributed.broadcast_buffers(network)
    return read_sums(), None


# ---------------------------------------------------------------------------- evaluation


def evaluate(
    network: nn.Module,
    loader: DataLoader,
    classifier: ClassifierRecipe,
    settings: LoopSettings,
    max_batches: int | None = None,
) -> dict:
    """Mean loss and accuracy over ``loader`` (Lightning: the validation/test loop), with the
    per-class metrics (their confusion matrix draws val/confusion_matrix) and the top losses."""
    network.eval()  # dropout off, BatchNorm uses its running statistics (Lightning: model.eval())
    classes = classifier.num_classes
    # Summed on the device, read once at the end (as Lightning's validation_step does).
    loss_sum = torch.zeros((), dtype=sum_dtype(settings.device), device=settings.device)
    seen = 0
    per_class = EvaluationMetrics(classes).to(settings.device)  # the same code as Lightning's
    top_losses = TopLosses()  # the most confidently wrong images (val/top_losses, the report)
    with torch.no_grad():  # no graph is kept: less memory, faster (Lightning: inference_mode)
        for batch_index, (images, labels) in enumerate(loader):
            if max_batches is not None and batch_index >= max_batches:
                break
            images = images.to(settings.device, non_blocking=True)
            labels = labels.to(settings.device, non_blocking=True)
            with autocast(settings):
                logits = classifier.forward(images, network)
                loss = classifier.loss(logits, labels)
            loss_sum += loss.to(loss_sum.dtype) * len(labels)  # the mean is weighted by images
            seen += len(labels)
            per_class.update(logits, labels)  # counts the confusion matrix too (the accuracy)
            top_losses.update(images, logits, labels)
    # Several processes: each saw its share; the metrics are over all of them (Lightning:
    # strategy.reduce in _log_evaluation, and EvaluationMetrics' sum over processes).
    total_loss, seen = distributed.sum_over_processes(loss_sum.item(), seen)
    per_class_result = per_class.compute()  # over every process (an all_reduce of the counts)
    return {
        "loss": total_loss / max(seen, 1),
        "acc": EvaluationMetrics.accuracy(per_class_result),
        "confusion": per_class_result["confusion"].cpu(),  # rows: true class
        "per_class": per_class_result,
        "top_losses": top_losses.result(),  # this process's
    }


# ---------------------------------------------------------------------------- the whole run


def fit(
    settings: LoopSettings,
    data: ImageData,
    classifier: ClassifierRecipe,
    resume: str | Path | None = None,
    config: dict | None = None,
    stop_request: StopRequest | None = None,
) -> FitResult:
    """Train ``classifier.network`` on ``data`` (Lightning: ``trainer.fit(model, datamodule)``).

    ``resume``: a manual checkpoint, or "last". ``stop_request``: set by SIGTERM / Ctrl-C.
    """
    # ---- set-up (Lightning: Trainer(...) and the start of trainer.fit) -------------------------
    settings = replace(settings, device=distributed.start(settings.device))  # torchrun: join
    if settings.deterministic:
        torch.use_deterministic_algorithms(True)  # Lightning: Trainer(deterministic=True)
    train_loader, val_loader = fit_loaders(settings, data, classifier)  # Lightning: setup("fit")
    network = classifier.network.to(settings.device)  # Lightning: moves the module for us
    # channels_last (auto: by device and precision), compile (Lightning: configure_model)
    prepared = classifier.prepare_network(settings.device, settings.precision)
    if resume is None:  # pretrained weights, if the model has any (Lightning: setup("fit"))
        classifier.load_pretrained_weights()
    schedule = configure_optimizers(classifier, len(train_loader), settings)
    interval = schedule.interval  # when the LR schedule steps: "step" or "epoch"
    identity = checkpoint_identity(classifier, data, config)  # what every checkpoint says
    with RunLog(settings, identity["hyper_parameters"], data) as log:  # Lightning: the logger
        folder = log.dir / "checkpoints"
        # Lightning: the ModelCheckpoint and EarlyStopping callbacks of the same config.
        best, latest, stopping = checkpoint_callbacks(settings, folder)
        state = RunState(network, schedule.optimizer, schedule.scheduler, interval,
                         grad_scaler(settings), [best, stopping], identity,
                         writes=log.main_process, schedule=schedule)  # fmt: skip
        log.say(prepared)  # what channels_last: auto chose (Lightning: configure_model says it)
        # Lightning: trainer.fit(..., ckpt_path=...), then num_sanity_val_steps on a fresh start
        resume_at = resume_or_start(resume, state, log, network, val_loader, classifier, settings)
        stop_reason = "max_epochs"
        while state.epoch < settings.max_epochs:  # ---- the epochs (Lightning: fit_loop)
            if reached_max_steps(state, settings):
                stop_reason = "max_steps"
                break
            started = time.perf_counter()
            distributed.set_epoch(train_loader, state.epoch)  # a new shuffle, same everywhere
            log.say(classifier.prepare_epoch(state.epoch))  # Lightning: on_train_epoch_start
            # DDP registers the trainable parameters when it wraps: wrap at every epoch's start,
            # so a backbone unfrozen by prepare_epoch is synchronized too.
            model = distributed.wrap(network, settings.device)
            sums, stopped_at = train_one_epoch(
                state, model, train_loader, classifier, data, settings, log, stop_request, resume_at
            )
            resume_at = None
            if stopped_at is not None:  # a signal: save exactly where we are, then stop
                path = state.save(folder / "last.ckpt", {}, stopped_at)
                raise TrainingInterrupted.saved(stop_request, state.epoch, state.global_step, path)
            # ---- validation, then the callbacks (Lightning: validation_step, on_validation_end)
            validates = (state.epoch + 1) % settings.check_val_every_n_epoch == 0  # Lightning's n
            val = None  # an epoch without validation: train/* only
            if validates:
                val = validate(network, val_loader, classifier, data, settings, log)
            metrics = epoch_metrics(sums, val, started)
            if interval == "epoch" and (validates or schedule.monitor is None):
                # after validation: ReduceLROnPlateau reads its metric (Lightning: interval epoch)
                step_scheduler(schedule, metrics)
            state.epoch += 1
            state.history.epochs.append(metrics)
            log.epoch(state.epoch - 1, state.global_step - 1, metrics, val)
            # Early stopping decides first (Lightning runs ModelCheckpoint last), so a checkpoint
            # holds the up-to-date patience count and a resumed run stops at the same epoch.
            should_stop = validates and stopping.update(metrics)
            if validates:
                best.update(metrics, state.epoch - 1, state.global_step, state.save)
            # last.ckpt after every epoch, validated or not (Lightning: save_on_train_epoch_end)
            latest.update(metrics, state.epoch - 1, state.global_step, state.save)
            if should_stop:
                stop_reason = stopping.reason(last_epoch=state.epoch == settings.max_epochs)
                break
        log.finish(state.history.epochs, state.global_step - 1)
        log.say(f"stopped after epoch {state.epoch - 1} ({stop_reason}); best {best.best_path}")
    distributed.barrier()  # process 0 has written its last file before any process returns
    return FitResult(state.history, log.dir, best.best_path, latest.path)


# ---------------------------------------------------------------------------- fit's steps


def fit_loaders(settings: LoopSettings, data: ImageData, classifier: ClassifierRecipe):
    """The training and validation loaders of a fit (Lightning: prepare_data() and setup("fit")
    on the DataModule, then the loops' samplers)."""
    data.prepare_data()
    data.setup("fit")
    classifier.use_class_counts(data.class_counts())  # class_weights: auto (Lightning: setup)
    # Several processes: each gets its share of every epoch, shuffled with the same seed.
    train_loader = data.train_dataloader()
    if settings.overfit_batches > 0:  # Lightning: overfit_batches (the same batches)
        train_loader = sequential(train_loader)
    train_loader = distributed.shard(train_loader, True, torch.initial_seed() % 2**31)
    val_loader = distributed.shard(data.val_dataloader(), shuffle=False)
    classifier.check_data("fit", data.hparams.augmentation)  # Lightning: setup("fit")
    return train_loader, val_loader


def checkpoint_callbacks(settings: LoopSettings, folder: Path):
    """The best checkpoint, last.ckpt and early stopping of the config (Lightning: its
    ModelCheckpoint and EarlyStopping callbacks)."""
    return (
        BestCheckpoint(settings.checkpoint, folder),
        LatestCheckpoint(settings.latest_filename, folder),
        EarlyStopping(settings.early_stopping),
    )


def resume_or_start(resume, state, log, network, val_loader, classifier, settings):
    """Restore a checkpoint's state (Lightning: trainer.fit(..., ckpt_path=...)), or check a few
    validation batches first on a fresh start (Lightning: num_sanity_val_steps). Returns where
    to resume inside an epoch, or None."""
    resume_at = None
    if resume is not None:
        checkpoint, path = read_resume_checkpoint(resume, settings)
        resume_at = state.restore(checkpoint, path)
        log.say(f"resumed from {path}: epoch {state.epoch}, step {state.global_step}")
    if state.epoch == 0:
        sanity_check(network, val_loader, classifier, settings)
    if resume is not None:  # restored last: shuffles and dropout continue the old sequence
        restore_rng_states(resume_at.epoch_start_rng if resume_at else checkpoint["rng_states"])
    return resume_at


def validate(network, val_loader, classifier, data, settings: LoopSettings, log) -> dict:
    """One validation pass (Lightning: the validation loop), with the figures' examples."""
    val_batches = batch_limit(len(val_loader), settings.limit_val_batches)
    val = evaluate(network, val_loader, classifier, settings, val_batches)
    if settings.validation_figures and log.main_process:  # every class in val/predictions
        val["examples"] = class_examples(network, data, classifier, settings)
    return val


# ---------------------------------------------------------------------------- small pieces


def epoch_metrics(train_sums: tuple[float, int, int], val: dict | None, started: float) -> dict:
    """The epoch's averages, over every process (Lightning: on_epoch=True, sync_dist=True);
    ``val`` None: an epoch without validation (check_val_every_n_epoch), train/* only."""
    loss_sum, correct, seen = distributed.sum_over_processes(*train_sums)
    validation = {}
    if val is not None:
        validation = {
            "val/loss": val["loss"],
            "val/acc": val["acc"],
            **{k: float(v) for k, v in EvaluationMetrics.scalars(val["per_class"], "val").items()},
        }
    return {
        "train/loss": loss_sum / max(seen, 1),
        "train/acc": correct / max(seen, 1),
        **validation,
        "time/epoch_seconds": time.perf_counter() - started,
    }


def class_examples(network, data: ImageData, classifier, settings: LoopSettings) -> tuple:
    """The first validation images of every class with the model's predictions (Lightning: the
    ValidationFigures callback does the same with project/runs/tensorboard_extras.py's
    functions)."""
    dataset = data.datasets["val"]
    indices = class_example_indices(dataset.targets)
    return predict_examples(
        lambda images: classifier.forward(images, network), dataset, indices, settings.device
    )


def reached_max_steps(state: RunState, settings: LoopSettings) -> bool:
    """Lightning: Trainer(max_steps=...); -1 means no limit."""
    return settings.max_steps != -1 and state.global_step >= settings.max_steps


def sanity_check(network, val_loader, classifier, settings: LoopSettings) -> None:
    """A few validation batches before training, so a bug in validation shows in seconds, not
    after an epoch. Under fork_rng: it must not change the training's random draws (Lightning
    runs its sanity check under isolate_rng, which is why the two loops stay bit-identical)."""
    if not settings.num_sanity_val_steps:
        return
    gpus = [settings.device] if settings.device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        evaluate(network, val_loader, classifier, settings, settings.num_sanity_val_steps)
