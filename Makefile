# Every target installs what it needs first, so a fresh clone works with `make train` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test lint transfer compare bench tensorboard clean

install: $(STAMP)

# Re-install only when pyproject.toml changes. pip (not uv/poetry) so the local torch wheels are used.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: install
	$(PY) -m project.quickstart --config configs/cnn.yaml

transfer: install
	$(PY) -m project.transfer_demo

# Lightning loop against the plain PyTorch loop (project/manual/), same config, side by side.
compare: install
	$(PY) -m project.compare --config configs/cnn.yaml

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m benchmarks.run_all

lint: install
	$(PY) -m ruff check project tests benchmarks
	$(PY) -m ruff format --check project tests benchmarks

tensorboard: install
	$(PY) -m tensorboard.main --logdir lightning_logs --host 127.0.0.1

clean:
	rm -rf lightning_logs data .pytest_cache
