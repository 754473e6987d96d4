"""``python -m project.transfer``: the transfer proof's table (project/transfer/proof.py)."""

from project.transfer.proof import main

if __name__ == "__main__":
    main()
