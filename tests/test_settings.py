"""Reading a config without Lightning (project/manual/settings.py) and the CLI's own lines.

- The manual loop's plain parser refuses a misspelt key in a YAML or on the command line, an
  unknown optimizer class, a bad value: one line naming the key, exit status 2.
- It reads the config's LightningModule class path as the recipe that module wraps, and a
  TensorBoardLogger's init_args merged across files, as LightningCLI does.
- ``python -m project --help`` calls itself ``python -m project``; ``test`` without
  ``--ckpt_path`` says in one line that it evaluates untrained weights.
"""

from __future__ import annotations

import sys

import pytest

from project.core.recipe import CNNRecipe
from project.manual.cli import main as manual_main
from project.manual.settings import build_data_and_model, loop_settings, parse

from .helpers import CNN_CONFIG, run_command


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line: no traceback, no usage text
    return err[0]


@pytest.mark.parametrize(
    ("yaml_text", "extra", "named"),
    [
        ("trainer:\n  max_epoch: 3\n", [], "max_epoch"),
        ("model:\n  init_args:\n    widht: 3\n", [], "widht"),
        ("", ["--trainer.max_epoch=3"], "--trainer.max_epoch"),
        ("", ["--model.init_args.optimizer=torch.optim.Nope"], "model.optimizer"),
        ("", ["--data.batch_size=abc"], "data.batch_size"),
    ],
)
def test_a_bad_key_or_value_is_one_line_and_exit_2(yaml_text, extra, named, tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml_text or "{}\n")
    with pytest.raises(SystemExit) as stopped:
        manual_main(["fit", "--config", CNN_CONFIG, "--config", str(typo), *extra])
    assert stopped.value.code == 2
    line = one_error_line(capsys)
    assert line.startswith("error:") and named in line, line


def test_the_lightning_class_path_is_read_as_its_recipe(tmp_path):
    config = parse(
        ["fit", "--config", CNN_CONFIG, f"--trainer.logger.init_args.save_dir={tmp_path}",
         "--model.init_args.optimizer=torch.optim.SGD", "--model.init_args.optimizer.lr=0.2"]
    )  # fmt: skip
    assert config.model.class_path == "project.core.recipe.CNNRecipe"
    data, recipe = build_data_and_model(config)
    assert isinstance(recipe, CNNRecipe) and recipe.num_classes == data.num_classes == 10
    optimizer = recipe.configure_optimizers(total_steps=10).optimizer
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["lr"] == 0.2
    # defaults.yaml's save_dir was replaced, its name kept from cnn.yaml: merged, not replaced
    settings = loop_settings(config)
    assert settings.log_root == tmp_path / "cnn"


def test_help_names_the_command_as_it_is_typed():
    result = run_command([sys.executable, "-m", "project", "--help"])
    assert result.stdout.startswith("usage: python -m project ")


def test_test_without_a_checkpoint_says_it_evaluates_untrained_weights(digits_root, tmp_path):
    result = run_command(
        [sys.executable, "-m", "project", "test", "--config", CNN_CONFIG,
         f"--data.root={digits_root}", f"--trainer.logger.init_args.save_dir={tmp_path}",
         "--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false"]
    )  # fmt: skip
    warnings = [line for line in result.stderr.splitlines() if "untrained weights" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: test without --ckpt_path")


def test_a_top_level_optimizer_option_names_the_models_own(capsys):
    from project.lit.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--config", CNN_CONFIG, "--optimizer", "torch.optim.SGD"])
    assert stopped.value.code == 2
    assert "use --model.init_args.optimizer" in one_error_line(capsys)
