"""``python -m project ...``: fit / validate / test / predict (project/cli.py), and ``check``.

python -m project fit --config configs/cnn.yaml
python -m project check --config configs/cnn.yaml      # the data check (project/data/check.py)
"""

import sys


def run() -> None:
    # Separate paths: checking data and exporting a model need no Trainer.
    if sys.argv[1:2] == ["check"]:
        from project.data.check import main as check

        raise SystemExit(check(sys.argv[2:]))
    if sys.argv[1:2] == ["export"]:
        from project.export import main as export

        raise SystemExit(export(sys.argv[2:]))
    from project.cli import main

    main()


if __name__ == "__main__":
    run()
