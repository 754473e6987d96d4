"""``python -m project.manual fit|validate|test``: the plain PyTorch loop, from the same YAML files.

    python -m project.manual fit --config configs/cnn.yaml             # train, print every epoch
    python -m project.manual fit --config configs/cnn.yaml --resume last   # continue a stopped run
    python -m project.manual test --config configs/cnn.yaml --ckpt_path CKPT  # manual or Lightning

The command itself is project/manual/cli.py (``run`` and ``main``, which tests call in-process);
this file only starts it, with the garbage collector paused while the libraries load.
"""

from project.core.gc_pause import paused_for_imports, skip_collection_at_exit

if __name__ == "__main__":
    # torch, torchvision, ...: about 0.9 s less (project/core/gc_pause.py)
    with paused_for_imports():
        from project.manual.cli import main
    try:
        main()
    finally:  # a command line's exit: about 1 s less (project/core/gc_pause.py)
        skip_collection_at_exit()
