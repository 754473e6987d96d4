# Every target installs what it needs first, so a fresh clone works with `make train` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test test-fast test-under-load lint transfer challenge-data compare bench docs tensorboard clean
.PHONY: lessons exercise mutation notebooks

install: $(STAMP)

# Re-install only when pyproject.toml changes. pip (not uv/poetry) so the local torch wheels are used.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: install
	$(PY) -m project.quickstart --config configs/cnn.yaml

# The offline transfer proof's table (project/transfer/proof.py); prepares challenge-data first.
transfer: install
	$(PY) -m project.transfer

# The workshop challenge's data, made once under data/glyphs: rendered glyphs, the pretrained source backbone
# (data/glyphs/source_resnet18.pth) and the 20-per-digit split (project/transfer/source.py).
challenge-data: install
	$(PY) -m project.transfer.source

# Lightning loop against the plain PyTorch loop (project/manual/), same config, side by side.
compare: install
	$(PY) -m project.compare --config configs/cnn.yaml

# What ruff checks: the package, tests, benchmarks and the workshop folders that exist.
LINT_PATHS := project tests benchmarks $(wildcard lessons exercises)

# The full suite, as CI runs it (.ci/run): ruff (lint, McCabe complexity <= 15), then every test,
# one pytest-xdist worker per core, each test file on one worker, the longest files first
# (tests/conftest.py: each worker's share of CPU threads; benchmarks/README.md: 5 min 35 s here).
test: install
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m pytest -n auto --dist loadfile --durations=25

# The edit-run cycle: ruff and the tests not marked slow (77 s on the 2-core dev VM, idle, before
# tests/test_docs.py, which took 25-30 s more on that VM while it was shared, 2026-12-02).
test-fast: install
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m pytest -n auto --dist loadfile -m "not slow"

# The full suite beside 2 processes of torch training steps with torch's default threads
# (tests/cpu_hog.py --kind torch: another training, as a foreign program runs it): shows the waits
# hold on a busy machine. The hog is stopped when the tests end; the exit status is the tests'.
test-under-load: install
	$(PY) -m tests.cpu_hog --workers 2 --kind torch & hog=$$!; \
	$(MAKE) test; status=$$?; \
	kill $$hog; wait $$hog; exit $$status

# The workshop (WORKSHOP.md): every lesson run as a script (each asserts what it teaches), and
# the checker of one exercise on your attempt: make exercise N=1
lessons: install
	@for lesson in lessons/[0-9][0-9]_*.py; do echo "== $$lesson"; $(PY) $$lesson || exit 1; done

# The lessons and exercises as Jupyter notebooks (lessons/*.ipynb, exercises/*.ipynb, gitignored):
# the .py scripts stay the source, so edit those and run this again. The kernel "python3" is the
# one whose Jupyter runs it: start Jupyter from the venv (WORKSHOP.md, "Notebooks").
NOTEBOOK_SOURCES = $(wildcard lessons/[0-9][0-9]_*.py exercises/[0-9][0-9]_*.py)
notebooks: install
	$(PY) -m jupytext --quiet --set-kernel python3 --to ipynb $(NOTEBOOK_SOURCES)

exercise: install
	@test -n "$(N)" || { echo "usage: make exercise N=1   (the exercises: exercises/NN_*.py)"; exit 2; }
	$(PY) -m exercises.check $(N)

# Mutation testing of the plain core ([tool.mutmut] in pyproject.toml: which modules, which fast
# tests), then the score: the share of mutants that some test caught (a timeout counts as caught).
# Not part of make test (minutes per module). One module: make mutation MUTANTS='project.core.mixing*'
# Each survivor: .venv/bin/python -m mutmut show <name>
MUTANTS ?=
mutation: install
	rm -rf mutants
	-$(PY) -m mutmut run $(MUTANTS)
	@$(PY) -m mutmut results --all true | awk -F': ' '$$2 != "not checked" {n++; s[$$2]++} \
	  END {caught = s["killed"] + s["timeout"]; \
	       printf "mutation score: %d of %d mutants caught (%.1f%%), %d survived, %d without a test\n", \
	              caught, n, n ? 100 * caught / n : 0, s["survived"], s["no tests"]}'
	@$(PY) -m mutmut results

bench: install
	$(PY) -m benchmarks.run_all

# Rewrite the docs' marked tables from their result files (benchmarks/doc_tables.py); the docs
# test fails while one differs.
docs: install
	$(PY) -m benchmarks.doc_tables

lint: install
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

tensorboard: install
	$(PY) -m tensorboard.main --logdir lightning_logs --host 127.0.0.1

clean:
	rm -rf lightning_logs data .pytest_cache
