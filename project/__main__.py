"""``python -m project ...``: fit / validate / test / predict (project/cli.py), and ``check``.

python -m project fit --config configs/cnn.yaml
python -m project check --config configs/cnn.yaml      # the data check (project/data/check.py)
python -m project lr_find --config configs/cnn.yaml    # learning-rate range test (lr_find.py)
python -m project weights resnet18                     # fetch or locate pretrained weights
"""

import sys

from project.fast_exit import skip_collection_at_exit


def run() -> None:
    # Separate paths: checking data and exporting a model need no Trainer.
    if sys.argv[1:2] == ["check"]:
        from project.data.check import main as check

        raise SystemExit(check(sys.argv[2:]))
    if sys.argv[1:2] == ["export"]:
        from project.export import main as export

        raise SystemExit(export(sys.argv[2:]))
    if sys.argv[1:2] == ["lr_find"]:  # the learning-rate range test (project/lr_find.py)
        from project.lr_find import main as lr_find

        raise SystemExit(lr_find(sys.argv[2:]))
    if sys.argv[1:2] == ["weights"]:  # download / locate pretrained weights (project/weights.py)
        from project.weights import main as weights

        raise SystemExit(weights(sys.argv[2:]))
    from project.cli import main

    main()


if __name__ == "__main__":
    try:
        run()
    finally:  # a command line's exit: about 1 s less (project/fast_exit.py)
        skip_collection_at_exit()
