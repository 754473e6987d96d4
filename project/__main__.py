"""``python -m project ...``: fit / validate / test / predict (project/lit/cli.py), and ``check``.

python -m project fit --config configs/cnn.yaml
python -m project check --config configs/cnn.yaml      # the data check (project/data/check.py)
python -m project lr_find --config configs/cnn.yaml    # learning-rate range test (lr_find.py)
python -m project weights resnet18                     # fetch or locate pretrained weights
python -m project sweep --config configs/cnn.yaml --sweep configs/sweeps/cnn.yaml --trials 20
python -m project prune --ckpt_path CKPT --amount 0.3  # fewer channels, fine-tuned (prune.py)
python -m project quantize --ckpt_path CKPT             # static int8 (project/deploy/quantize.py)
python -m project serve --ckpt_path CKPT               # HTTP server + page (project/serve/)
python -m project shards --config configs/cnn.yaml --output DIR   # LitData shards (shards.py)
"""

import importlib
import sys

from project.core.errors import USER_INPUT_STATUS
from project.core.extras import missing_extra_message
from project.core.gc_pause import paused_for_imports, skip_collection_at_exit

# Commands with their own argument parser (not LightningCLI's subcommands).
COMMANDS = {
    "check": "project.data.check",  # the data check
    "export": "project.deploy.export",  # ONNX / torch.export / AOTInductor export, parity-checked
    "lr_find": "project.lit.lr_find",  # the learning-rate range test
    "sweep": "project.sweep.cli",  # hyperparameter search with Optuna (project/sweep/)
    "prune": "project.deploy.prune",  # structural channel pruning, then fine-tuning
    "quantize": "project.deploy.quantize",  # static int8 (ONNX Runtime, PT2E), against fp32
    "serve": "project.serve.cli",  # HTTP server and page (LitServe)
    "shards": "project.data.shards",  # write the data as LitData shards (--data.shards DIR)
    "weights": "project.models.weights",  # download / locate pretrained weights
}


def run() -> None:
    """The command line (``python -m project`` and the ``image-classifier`` script)."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if message := missing_extra_message(command):  # its pip extra is not installed
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(USER_INPUT_STATUS)
    try:
        # torch, Lightning, ...: about 0.9 s less (project/core/gc_pause.py)
        with paused_for_imports():
            module = importlib.import_module(COMMANDS.get(command, "project.lit.cli"))
        if command in COMMANDS:
            raise SystemExit(module.main(sys.argv[2:]))
        module.main()  # fit / validate / test / predict: LightningCLI (project/lit/cli.py)
    finally:  # a command line's exit: about 1 s less (project/core/gc_pause.py)
        skip_collection_at_exit()


if __name__ == "__main__":
    run()
