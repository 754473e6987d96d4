"""``python -m project ...``: fit / validate / test / predict (project/cli.py), and ``check``.

python -m project fit --config configs/cnn.yaml
python -m project check --config configs/cnn.yaml      # the data check (project/data/check.py)
"""

import sys


def run() -> None:
    if sys.argv[1:2] == ["check"]:
        # A separate path: checking data needs neither a model nor a Trainer.
        from project.data.check import main as check

        raise SystemExit(check(sys.argv[2:]))
    from project.cli import main

    main()


if __name__ == "__main__":
    run()
