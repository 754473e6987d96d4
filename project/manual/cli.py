"""The manual loop's command line: parse the same YAML files, then fit, validate or test.

    python -m project.manual fit --config configs/cnn.yaml             # train, print every epoch
    python -m project.manual fit --config configs/cnn.yaml --resume last   # continue a stopped run
    python -m project.manual test --config configs/cnn.yaml --ckpt_path CKPT  # manual or Lightning

Checkpoints and TensorBoard logs go to lightning_logs/<name>/manual_version_<n>/, beside the
Lightning runs' version_<n>/, under the same tag names, so one TensorBoard overlays both.
"""

from __future__ import annotations

from project.core.errors import exit_on_error
from project.core.metrics import EvaluationMetrics
from project.manual import distributed
from project.manual.loop import evaluate, fit
from project.manual.settings import (
    ConfigError,
    build_data_and_model,
    lightning_class_path,
    loop_settings,
    parse,
    seed_everything,
)
from project.manual.signals import stop_requests
from project.runs.checkpoints import load_network_weights
from project.runs.tensorboard_extras import top_losses_image
from project.runs.test_report import report_folder, write_report


def plain_config(config) -> dict:
    """The parsed config as plain values (stored in checkpoints, which weights_only must load)."""
    plain = config.clone()
    for key in ("config", "__default_config__"):  # the YAML files read (Path objects): not settings
        plain.pop(key, None)
    # As the YAML says it: the LightningModule that wraps the recipe (python -m project reads it).
    plain.model.class_path = lightning_class_path(plain.model.class_path)
    return plain.as_dict()


def run(args: list[str] | None = None):
    """Parse ``args`` and run the stage; returns fit's FitResult or the evaluation metrics."""
    config = parse(args)
    settings = loop_settings(config)
    seed_everything(config.seed_everything)  # before the model is built: same initial weights
    data, classifier = build_data_and_model(config)
    if config.stage == "fit":
        with stop_requests() as stop_request:  # SIGTERM / Ctrl-C: stop after the step, save
            try:
                return fit(
                    settings, data, classifier, config.resume, plain_config(config), stop_request
                )
            finally:
                distributed.stop()  # torchrun: leave the process group

    if config.ckpt_path is None:
        raise ConfigError(f"{config.stage} needs --ckpt_path (a manual or Lightning checkpoint)")
    load_network_weights(classifier.network, config.ckpt_path)  # either format, weights_only
    data.prepare_data()
    split = "val" if config.stage == "validate" else "test"
    data.setup(config.stage)
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    network = classifier.network.to(settings.device)
    classifier.use_class_counts(data.class_counts())  # class_weights: auto weighs the loss
    metrics = evaluate(network, loader, classifier, settings)
    print(f"{split}/loss {metrics['loss']:.4f}  {split}/acc {metrics['acc']:.4f}")
    scalars = EvaluationMetrics.scalars(metrics["per_class"], split)
    if split == "test" and distributed.rank() == 0:  # the same report as python -m project test
        folder = report_folder(config.ckpt_path, settings.log_root)
        worst = top_losses_image(metrics["top_losses"], data.class_names, *data.normalization())
        write_report(folder, metrics["per_class"], data.class_names, worst)
    return {
        f"{split}/loss": metrics["loss"],
        f"{split}/acc": metrics["acc"],
        **{name: float(value) for name, value in scalars.items()},
    }


def main(args: list[str] | None = None) -> None:
    # Our errors end as one line and an exit status, the same as python -m project's
    # (project/core/errors.py): bad input 2, a NaN loss 1, SIGTERM 143, Ctrl-C 130.
    with exit_on_error():
        run(args)
