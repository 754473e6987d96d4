"""``python -m project ...``: see project/cli.py."""

from project.cli import main

if __name__ == "__main__":
    main()
