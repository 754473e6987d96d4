"""The same training as ``python -m project``, written as a plain PyTorch loop (the teaching twin).

    python -m project.manual fit --config configs/cnn.yaml
    python -m project.manual test --config configs/cnn.yaml --ckpt_path PATH/TO/last.ckpt

loop.py is the loop itself (read it first); README.md here maps every Lightning feature to the
function that does it; settings.py reads the LightningCLI's YAML files; cli.py runs it.
"""
