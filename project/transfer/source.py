"""The offline "pretrained" backbone: ResNet18 trained on rendered letters, saved as a .pth file.

    python -m project.transfer.source          # or: make challenge-data (about a minute, once)

Writes the glyphs (project/transfer/glyphs.py), trains configs/resnet18.yaml + configs/transfer/
source.yaml on the 52 letters, and saves the backbone's state_dict (torchvision's resnet18 keys,
no ``fc``) to data/glyphs/source_resnet18.pth. Any config then loads it like downloaded weights:

    --model.init_args.weights data/glyphs/source_resnet18.pth

It also writes the challenge's data split, data/glyphs/digits/k20_seed0/{train,val}. Each step is
skipped when its output exists, so this runs once per machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from project.runs.checkpoints import save_atomic
from project.transfer.glyphs import GLYPHS_ROOT, few_shot_split, write_glyphs

SOURCE_WEIGHTS = GLYPHS_ROOT / "source_resnet18.pth"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
CHALLENGE_K, CHALLENGE_SEED = 20, 0


def train_source(root: Path, weights_file: Path, extra: list[str] | None = None) -> float:
    """Train on the letters under ``root``; save the backbone to ``weights_file``; val/acc."""
    from project.lit.cli import main  # Lightning is imported only when a source must be trained

    # The longest step of the workshop (WORKSHOP.md's timing table: minutes, far more on a busy
    # laptop): say so first, and keep Lightning's progress bar, so it never looks hung.
    print(
        f"training the letters backbone ({root / 'letters'}): one progress bar per epoch; "
        "minutes on a laptop, longer while it runs other work (WORKSHOP.md)",
        flush=True,
    )
    cli = main(
        [
            "fit",
            "--config",
            str(CONFIGS / "resnet18.yaml"),
            "--config",
            str(CONFIGS / "transfer" / "source.yaml"),
            f"--data.root={root / 'letters'}",
            "--trainer.enable_model_summary=false",
            *(extra or []),
        ]
    )
    backbone = cli.model.network.backbone.state_dict()  # fc is nn.Identity: no head keys
    save_atomic({k: v.detach().cpu() for k, v in backbone.items()}, weights_file)
    return cli.trainer.callback_metrics["val/acc"].item()


def prepare(root: Path = GLYPHS_ROOT, extra: list[str] | None = None) -> Path:
    """Glyphs, source backbone file and the challenge split, each made only if missing."""
    write_glyphs(root)
    few_shot_split(root, CHALLENGE_K, CHALLENGE_SEED)
    weights_file = root / SOURCE_WEIGHTS.name
    if not weights_file.is_file():
        started = time.perf_counter()
        accuracy = train_source(root, weights_file, extra)
        seconds = time.perf_counter() - started
        print(f"source backbone: letters val/acc {accuracy:.4f} in {seconds:.0f} s: {weights_file}")
    return weights_file


if __name__ == "__main__":
    extra, sys.argv[1:] = sys.argv[1:], []  # to the CLI as args only (else Lightning warns)
    path = prepare(extra=extra)
    print(f"ready: {path} and {GLYPHS_ROOT / 'digits' / f'k{CHALLENGE_K}_seed{CHALLENGE_SEED}'}")
