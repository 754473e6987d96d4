"""``python -m project.serve``: the same as ``python -m project serve`` (cli.py)."""

import sys

from project.serve.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
