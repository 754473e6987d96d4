"""The docs checked against the code: every name, command and config value they quote.

Every Markdown file of the repository is read generically (no list of today's names): each code
span (`...`) and each line of a fenced code block becomes a claim, and the test id names the file
and line, so a failure says which sentence broke:

- names: a path (`project/core/optimizers.py`, `configs/cnn.yaml`) exists; a dotted name of the
repo's
  packages (`project.data.transforms.only_square_resize`) imports and has the attribute; a
  `module.attr()` of one of our modules (`signals.stop_requests()`) is that module's attribute; a
  class name (`RunState`) or a call (`evaluate()`) is still written somewhere in the code;
- commands: every `python -m project...` line is parsed by the real parser without running
  anything (LightningCLI subcommands with --print_config, the other commands' own parsers), so an
  option that does not exist fails; every `make TARGET` names a target of the Makefile; other
  `python -m MODULE` lines name a module that exists;
- config values: `key: value` spans next to a `configs/*.yaml` path hold in that file; next to the
  word "default", they are what the parser gives without a config.

    python -m pytest tests/test_docs.py -q

What this does not check: prose without backticks, tree listings in code blocks, figures (see
benchmarks/README.md), commands of other tools (torchrun, srun, pytest), and the behaviour a
sentence describes.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gc
import importlib
import importlib.util
import io
import json
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import jsonargparse
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Things the docs name that are created at run time or live outside the repository, and so are
# not in a fresh clone. Prefixes of paths; keep this list short and say why.
RUNTIME_PREFIXES = (
    "lightning_logs/",  # every run's logs and checkpoints
    "data/",  # the digits, data/glyphs, data/skewed: written on first use
    ".venv",  # made by make install
    "~/",  # the user's home: torch's weights cache
    "/",  # absolute paths of the user's machine (/tmp/before, ...)
    ".pytest_cache",  # made by pytest (make clean deletes it)
    ".ci/",  # CI's runner, not part of the stored tree
)
# File names that runs write (checkpoints, reports, figures) or that the user writes.
RUNTIME_FILES = {
    "last.ckpt",  # every run's checkpoints folder
    "model.onnx",  # python -m project export --output model.onnx
    "predictions.csv",  # the prediction writer
    "splits.csv",  # the split file of a data root
    "labels.csv",  # the digits' label file, written with them
    "curves.png",  # python -m project.runs.curves, make compare
    "lr_find.png",  # python -m project lr_find
    "confusion_matrix.png",  # test reports
    "top_losses.png",  # test reports
    "test_report/classification_report.csv",  # test reports
    "classification_report.csv",
    "f1.yaml",  # example configs the docs ask the user to write
    "csv.yaml",
    "my.py",  # exercises: --file my.py
    "trials.csv",  # python -m project sweep, in the sweep's folder (project/sweep/report.py)
    "best.yaml",
    "history.png",
    "importance.png",
    "importance.csv",
    "optimizers.yaml",  # docs/sweeps.md's per-class example, which the reader saves
    "study.db",
    "lessons/*.ipynb",  # written by make notebooks from the .py files (git ignores them)
    "exercises/*.ipynb",
    "project/transfer_demo.py",  # named as removed (docs/transfer.md), with the commit to see it
}
FILE_SUFFIXES = (".py", ".yaml", ".yml", ".md", ".toml", ".csv", ".txt", ".pth", ".ckpt", ".png")
# Placeholders the docs write in commands, and a value of the right type to parse in their place.
PLACEHOLDERS = {"N": "1", "LR": "0.01", "CONFIG": "configs/cnn.yaml", "K": "0"}
PACKAGES = ("project", "benchmarks", "exercises", "tests", "lessons")
# The libraries whose names the docs use bare (ModelCheckpoint, DataLoader, ...).
LIBRARIES = (
    "torch",
    "torch.nn",
    "torch.optim",
    "torch.utils.data",
    "torchvision.transforms.v2",
    "lightning.pytorch",
    "lightning.pytorch.callbacks",
    "lightning.pytorch.loggers",
    "lightning.pytorch.cli",
)


# ---------------------------------------------------------------------------------------------
# Reading the Markdown
# ---------------------------------------------------------------------------------------------
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")


SKIPPED_FOLDERS = {".venv", "data", "lightning_logs", ".git", ".pytest_cache", "node_modules"}


def tracked_files() -> list[str]:
    """The repository's files (git ls-files); without git, every file outside SKIPPED_FOLDERS."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = []
    if listed:
        return listed
    return [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*")
        if path.is_file() and not SKIPPED_FOLDERS & set(path.relative_to(ROOT).parts)
    ]


def doc_files() -> list[Path]:
    return sorted(ROOT / name for name in tracked_files() if name.endswith(".md"))


def _spans_of_paragraph(paragraph: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """Code spans of one paragraph (a span may wrap over lines), with the line where it opens."""
    text = "\n".join(line for _, line in paragraph)
    starts, position = [], 0
    for number, line in paragraph:
        starts.append((position, number, line))
        position += len(line) + 1
    found = []
    for match in SPAN.finditer(text):
        number, line = next((n, line) for p, n, line in reversed(starts) if p <= match.start())
        found.append((number, " ".join(match.group(1).split()), line))
    return found


def claims(path: Path) -> list[tuple[int, str, str, str]]:
    """(line number, kind "inline"/"block", text, the source line) of every code span and
    fenced-block line of one file; block lines continued with a backslash are joined."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, paragraph, index = [], [], 0
    while index < len(lines):
        if FENCE.match(lines[index]):
            found += [(n, "inline", t, s) for n, t, s in _spans_of_paragraph(paragraph)]
            paragraph, index = [], index + 1
            while index < len(lines) and not FENCE.match(lines[index]):
                start, text = index + 1, lines[index]
                while text.rstrip().endswith("\\") and index + 1 < len(lines):
                    index += 1
                    text = text.rstrip()[:-1] + " " + lines[index].strip()
                found.append((start, "block", text, text))
                index += 1
        elif not lines[index].strip():
            found += [(n, "inline", t, s) for n, t, s in _spans_of_paragraph(paragraph)]
            paragraph = []
        else:
            paragraph.append((index + 1, lines[index]))
        index += 1
    found += [(n, "inline", t, s) for n, t, s in _spans_of_paragraph(paragraph)]
    return found


def all_claims():
    for path in doc_files():
        for number, kind, text, line in claims(path):
            yield path, number, kind, text, line


def params(select) -> list:
    """pytest params of the claims ``select`` keeps, each id "FILE:LINE:text"."""
    chosen = []
    for path, number, kind, text, line in all_claims():
        item = select(text, kind)
        if item is not None:
            where = f"{path.relative_to(ROOT)}:{number}"
            chosen.append(pytest.param(where, item, line, id=f"{where}:{text[:60]}"))
    return chosen


# ---------------------------------------------------------------------------------------------
# Names: paths, dotted names, classes and functions
# ---------------------------------------------------------------------------------------------
PATH_LIKE = re.compile(r"^[\w.~/*-]+$")
DOTTED = re.compile(r"^([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)(\(\))?$")
CLASS_NAME = re.compile(r"^[A-Z]\w*[a-z]\w*$")  # RunState, SmallCNN; not TORCH_HOME or CSV
CALL = re.compile(r"^([A-Za-z_]\w*)\(\)$")  # evaluate()


PLACEHOLDER_PART = re.compile(r"NN|_N\b|X\.X|\.\.\.|<")  # exercises/NN_name.py, version_N


def _path_claim(text: str):
    if not PATH_LIKE.match(text) or PLACEHOLDER_PART.search(text) or text.startswith("."):
        return None  # not a path, a template of one, or a bare suffix (.pth)
    first = text.split("/")[0]
    if text.endswith(FILE_SUFFIXES) or (ROOT / first).exists() or text.startswith(RUNTIME_PREFIXES):
        return ("path", text)
    if "/" in text and re.match(r"^[a-z]+/\w+$", text):  # val/acc, lr/head: a logged name
        return ("word", text.split("/")[1])
    return None


def name_claim(text: str, kind: str):
    if kind != "inline" or " " in text:
        return None
    path = _path_claim(text)
    if path:
        return path
    match = DOTTED.match(text)
    if match:
        return ("dotted", match.group(1) + match.group(2))
    if CLASS_NAME.match(text):
        return ("word", text)
    match = CALL.match(text)
    if match:
        return ("word", match.group(1))
    return None


def _code_text() -> str:
    parts = []
    for package in (*PACKAGES, "configs"):
        for file in sorted((ROOT / package).rglob("*")):
            if file.suffix in (".py", ".yaml") and "__pycache__" not in file.parts:
                parts.append(file.read_text(encoding="utf-8"))
    return "\n".join(parts)


CODE = "\n".join(
    [
        _code_text(),
        *((ROOT / name).read_text(encoding="utf-8") for name in ("Makefile", "pyproject.toml")),
    ]
)
TRACKED = set(tracked_files())


def _exists(doc: Path, text: str) -> bool:
    if text.startswith(RUNTIME_PREFIXES) or text in RUNTIME_FILES or text.endswith(".ckpt"):
        return True  # (any .ckpt: checkpoints are written by runs)
    text = text.rstrip("/")
    # Judged by the tracked files, not the disk: a file generated here (a notebook, a result) and
    # ignored by git is not in the clean clone CI tests, so it must not make the check pass.
    for base in (ROOT, doc.parent, ROOT / "project"):  # project/: "manual/loop.py" in a sentence
        try:
            relative = (base / text).resolve().relative_to(ROOT).as_posix()
        except ValueError:
            continue  # outside the repository
        if any(
            fnmatch.fnmatch(name, relative) or name.startswith(relative + "/") for name in TRACKED
        ):
            return True
    # a bare file name ("loop.py", "run_state.py"): a file of that name in the repository
    return "/" not in text and any(Path(name).name == text for name in TRACKED)


def _resolve_dotted(dotted: str):
    """Import the longest module prefix of ``dotted``, then read the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)  # AttributeError: the name moved or went
        return obj
    raise ImportError(f"no module of {dotted} imports")


def _our_modules(stem: str) -> list[str]:
    """Dotted names of the repository's modules whose file is ``stem``.py (signals -> ...)."""
    return [
        name[:-3].replace("/", ".")
        for name in TRACKED
        if name.endswith(f"/{stem}.py") and name.split("/")[0] in PACKAGES
    ]


def check_dotted(dotted: str) -> None:
    head, rest = dotted.split(".", 1)
    if head in PACKAGES:
        _resolve_dotted(dotted)
        return
    modules = _our_modules(head)
    if modules:  # run_log.next_log_dir(): one of our modules, short name
        errors = []
        for module in modules:
            try:
                _resolve_dotted(f"{module}.{rest}")
                return
            except (ImportError, AttributeError) as error:
                errors.append(f"{module}: {error}")
        raise AssertionError(f"{dotted}: " + "; ".join(errors))
    if re.search(rf"^\s*class {head}\b", CODE, re.M):  # RunState.save(): a class of ours
        attr = rest.split(".")[0]
        assert re.search(rf"\bdef {attr}\b|\b{attr}\s*[:=]", CODE), f"{head} has no {attr}"
        return
    # anything else (torch.no_grad, data.num_classes, model.eval) is not a name of this repo


def check_word(word: str) -> None:
    if re.search(rf"\b{re.escape(word)}\b", CODE):
        return
    for library in LIBRARIES:
        if hasattr(importlib.import_module(library), word):
            return
    raise AssertionError(f"{word} is written nowhere in the code nor in {', '.join(LIBRARIES)}")


@pytest.mark.parametrize("where, claim, line", params(name_claim))
def test_named_things_exist(where: str, claim: tuple[str, str], line: str) -> None:
    kind, text = claim
    doc = ROOT / where.split(":")[0]
    if kind == "path":
        assert _exists(doc, text), f"{where}: {text} does not exist (nor is it made at run time)"
    elif kind == "dotted":
        check_dotted(text)
    else:
        check_word(text)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
# A command: at the start of the span or line, after a prompt, VAR=value settings or a launcher.
LEAD = r"^(?:\$ )?(?:[A-Z_]+=\S* )*(?:srun |/usr/bin/time -v )?"
PYTHON_M = re.compile(LEAD + r"python3? -m ([\w.]+)(.*)$")
MAKE = re.compile(LEAD + r"make ([\w-]+)")


def _strip_comment(text: str) -> str:
    return re.split(r"\s#\s|\s#$|^#", text, maxsplit=1)[0] if "#" in text else text


def command_claim(text: str, kind: str):
    text = _strip_comment(text.strip())
    match = PYTHON_M.match(text)
    if match:
        return ("python", match.group(1).rstrip("."), match.group(2))
    match = MAKE.match(text)
    return ("make", match.group(1), "") if match else None


def _arguments(rest: str) -> list[str] | None:
    """The command's arguments with placeholders filled; None where the doc elides them (...)."""
    rest = re.sub(r"(?<!['\"])\[[^\]]*\](?!['\"])", " ", rest)  # [optional parts] of a usage line
    rest = rest.split(" && ")[0].split(" | ")[0].rstrip(" &")
    try:
        words = shlex.split(rest)
    except ValueError:
        return None
    if any(word.startswith("(") for word in words):  # a table row or prose, not a command
        return None
    if "..." in words:  # an elided part: "--config ..." is not a command to parse
        return None
    return [PLACEHOLDERS.get(word, word) for word in words]


class Parsed(BaseException):
    """Raised after the outermost parse_args succeeded: nothing past parsing runs."""

    def __init__(self, namespace):
        super().__init__("parsed")
        self.namespace = namespace


@contextlib.contextmanager
def parse_only():
    """Every argparse / jsonargparse ``parse_args`` raises Parsed once it has succeeded.

    Stricter than --help, which exits as soon as it is read, before an unknown option is reported.
    ``parse_known_args`` (compare's first pass, which hands the rest on) is left alone."""
    depth = [0]
    originals = {
        cls: cls.__dict__["parse_args"]
        for cls in (argparse.ArgumentParser, jsonargparse.ArgumentParser)
    }

    def wrap(original):
        def parse_args(self, *args, **kwargs):
            depth[0] += 1
            try:
                namespace = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise Parsed(namespace)
            return namespace

        return parse_args

    for cls, original in originals.items():
        cls.parse_args = wrap(original)
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.parse_args = original


_PARSED: dict[tuple, tuple[bool, object]] = {}


def run_parse_only(module: str, args: list[str], print_config: bool = True):
    """Run ``python -m module args`` in this process up to its argument parse; returns the
    parsed namespace, or raises AssertionError with what the parser said. The docs repeat
    commands: each distinct one is parsed once per session."""
    key = (module, tuple(args), print_config)
    if key not in _PARSED:
        try:
            _PARSED[key] = (True, _run_parse_only(module, args, print_config))
        except AssertionError as error:
            _PARSED[key] = (False, str(error))
    ok, value = _PARSED[key]
    if not ok:
        raise AssertionError(value)
    return value


def _run_parse_only(module: str, args: list[str], print_config: bool):
    from project.__main__ import COMMANDS

    if (
        print_config
        and module == "project"
        and (not args or args[0] not in COMMANDS)
        and "--help" not in args
    ):
        args = [*args, "--print_config"]  # LightningCLI: prints the resolved config, exits 0
    saved_argv, out, err = sys.argv, io.StringIO(), io.StringIO()
    sys.argv = [f"python -m {module}", *args]
    try:
        with parse_only(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runpy.run_module(module, run_name="__main__", alter_sys=False)
    except Parsed as parsed:
        return parsed.namespace
    except SystemExit as stop:
        if stop.code in (0, None):
            return None
        said = [line for line in err.getvalue().splitlines() if "error" in line.lower()]
        raise AssertionError(f"exit {stop.code}: {' / '.join(said)[-800:]}") from None
    finally:
        sys.argv = saved_argv
        gc.unfreeze()  # the entry points freeze what is alive at their end
    raise AssertionError(f"python -m {module} ran without parsing its arguments")


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+)\s*:(?!=)", text, re.M))


@pytest.mark.parametrize("where, claim, line", params(command_claim))
def test_commands_parse(where: str, claim: tuple[str, str, str], line: str) -> None:
    kind, name, rest = claim
    if kind == "make":
        assert name in _makefile_targets(), f"{where}: the Makefile has no target {name!r}"
        return
    module = name
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{where}: no module {module}"
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        assert importlib.util.find_spec(f"{module}.__main__"), f"{module} has no __main__"
    args = _arguments(rest)
    if not args or module.split(".")[0] != "project":
        return  # the module exists; other packages' arguments are not parsed here (docstring)
    if len(args) == 1 and not args[0].startswith("-"):
        args = [*args, "--help"]  # the span names a command ("`python -m project export`")
    run_parse_only(module, args)


# ---------------------------------------------------------------------------------------------
# Config values
# ---------------------------------------------------------------------------------------------
KEY_VALUE = re.compile(r"^([A-Za-z_][\w.]*): ([\w.-]+)$")
CONFIG_PATH = re.compile(r"configs/[\w/.-]+\.ya?ml")


def flatten(value, prefix: str = "") -> dict[str, object]:
    """{"a.b.0.c": value}; list items by index, so a callback's init_args are found too."""
    if hasattr(value, "items"):
        pairs = value.items()
    elif isinstance(value, list):
        pairs = enumerate(value)
    else:
        return {prefix.rstrip("."): value}
    flat = {}
    for key, item in pairs:
        flat.update(flatten(item, f"{prefix}{key}."))
    return flat


def _matches(flat: dict[str, object], key: str) -> list[object]:
    return [v for k, v in flat.items() if k == key or k.endswith(f".{key}")]


def _same(stated: str, actual: object) -> bool:
    return str(yaml.safe_load(stated)) == str(actual)


def config_claim(text: str, kind: str):
    match = KEY_VALUE.match(text) if kind == "inline" else None
    return (match.group(1), match.group(2)) if match else None


_DEFAULTS: dict[str, object] = {}


def parser_defaults() -> dict[str, object]:
    """What ``python -m project fit`` resolves with no --config (configs/defaults.yaml and the
    classes' defaults), given only the model class (it has none by default) of configs/cnn.yaml."""
    if not _DEFAULTS:
        model = yaml.safe_load((ROOT / "configs/cnn.yaml").read_text())["model"]["class_path"]
        args = ["fit", "--model", model]
        _DEFAULTS.update(flatten(run_parse_only("project", args, print_config=False)))
    return _DEFAULTS


def says_default(line: str, span: str) -> bool:
    """The words right around the span call its value the default ("(default `x: y`)",
    "`x: y`, the default"); a "default" elsewhere on the line is about something else."""
    at = line.find(f"`{span}`")
    return at >= 0 and "default" in line[max(0, at - 12) : at + len(span) + 2 + 16].lower()


@pytest.mark.parametrize("where, claim, line", params(config_claim))
def test_config_values(where: str, claim: tuple[str, str], line: str) -> None:
    key, stated = claim
    files = CONFIG_PATH.findall(line)
    if files:
        found = []
        for file in files:
            found += _matches(flatten(yaml.safe_load((ROOT / file).read_text()) or {}), key)
        if found:
            assert any(_same(stated, v) for v in found), (
                f"{where}: `{key}: {stated}` but {', '.join(files)} hold {found}"
            )
            return
    everywhere = [
        flatten(yaml.safe_load(f.read_text()) or {}) for f in ROOT.glob("configs/**/*.yaml")
    ]
    known = any(_matches(flat, key) for flat in everywhere)
    if says_default(line, f"{key}: {stated}") and not files:
        defaults = _matches(parser_defaults(), key)
        assert defaults, f"{where}: {key} is no option of python -m project fit"
        assert any(_same(stated, v) for v in defaults), (
            f"{where}: the default of {key} is {defaults}"
        )
        return
    # otherwise the key must still exist: in a config, as an option, or in the code (a Lightning
    # argument such as save_last, a scheduler dict's interval)
    in_code = re.search(rf"\b{re.escape(key.split('.')[-1])}\b", CODE)
    assert known or _matches(parser_defaults(), key) or in_code, f"{where}: {key} is nowhere"


# ---------------------------------------------------------------------------------------------
# "`name` in `path.py`": the file still has the name
# ---------------------------------------------------------------------------------------------
NAMES_IN_FILE = re.compile(
    r"((?:`\w+(?:\(\))?`(?:, and |, | and | or | / ))*`\w+(?:\(\))?`) (?:in|from) `([\w./]+\.py)`"
)


def names_in_file_params() -> list:
    chosen = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for match in NAMES_IN_FILE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            for name in re.findall(r"`(\w+)(?:\(\))?`", match.group(1)):
                claim = (name, match.group(2))
                chosen.append(pytest.param(where, claim, id=f"{where}:{name} in {claim[1]}"))
    return chosen


@pytest.mark.parametrize("where, claim", names_in_file_params())
def test_names_are_in_the_file_named(where: str, claim: tuple[str, str]) -> None:
    """A name said to be in a file is in it: defined there, or imported there (an alias left
    behind when it moved)."""
    name, file = claim
    doc = ROOT / where.split(":")[0]
    found = [f for f in (ROOT / file, doc.parent / file, ROOT / "project" / file) if f.is_file()]
    if not found and _exists(doc, file):
        return  # a file made at run time
    assert found, f"{where}: {file} does not exist"
    assert defines(found[0], name), f"{where}: {file} defines no {name} (moved?)"


def defines(file: Path, name: str) -> bool:
    """``file`` defines ``name``, imports it (an alias left behind when it moved) or sets it as
    an attribute in __init__."""
    defined = (
        rf"^\s*(?:async )?def {name}\b|^\s*class {name}\b|^\s*{name}\s*[:=]"  # defined here
        rf"|^(?:from|import) .*\b{name}\b|^\s+{name},?\s*(?:#.*)?$"  # imported (an alias)
        rf"|^\s*self\.{name}\s*[:=]"  # an attribute set in __init__
    )
    return re.search(defined, file.read_text(encoding="utf-8"), re.M) is not None


# The same in the workshop's own files, whose docstrings send a learner to the project's code:
# "``ImageData._loader`` in project/data/pipeline.py" names a file that has ImageData and _loader.
NAME_IN_PROJECT_FILE = re.compile(r"``([\w.]+?)(?:\(\))?`` in\s+(project/[\w/]+\.py)")


def workshop_names_params() -> list:
    chosen = []
    for path in sorted([*ROOT.glob("lessons/*.py"), *ROOT.glob("exercises/**/*.py")]):
        text = path.read_text(encoding="utf-8")
        for match in NAME_IN_PROJECT_FILE.finditer(text):
            where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
            claim = (match.group(1), match.group(2))
            chosen.append(pytest.param(where, claim, id=f"{where}:{claim[0]} in {claim[1]}"))
    return chosen


@pytest.mark.parametrize("where, claim", workshop_names_params())
def test_the_workshops_files_point_at_code_that_exists(where: str, claim: tuple[str, str]) -> None:
    dotted, file = claim
    assert (ROOT / file).is_file(), f"{where}: {file} does not exist"
    for name in dotted.split("."):
        assert defines(ROOT / file, name), f"{where}: {file} defines no {name} (moved?)"


# ---------------------------------------------------------------------------------------------
# Example configs: a ```yaml block whose first line is "# NAME.yaml: python -m project ..."
# ---------------------------------------------------------------------------------------------
EXAMPLE_HEADER = re.compile(r"^# ([\w.-]+\.ya?ml): (python -m project.*)$")


def example_config_params() -> list:
    chosen = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.M | re.S):
            header = EXAMPLE_HEADER.match(match.group(1).splitlines()[0])
            if header:
                where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 2}"
                item = (header.group(1), header.group(2), match.group(1))
                chosen.append(pytest.param(where, item, id=f"{where}:{header.group(1)}"))
    return chosen


@pytest.mark.parametrize("where, example", example_config_params())
def test_example_configs_parse(where: str, example: tuple[str, str, str], tmp_path) -> None:
    """The example is written where its command expects it, and the command parses with it."""
    name, command, body = example
    (tmp_path / name).write_text(body, encoding="utf-8")
    kind, module, rest = command_claim(command, "block")
    args = [str(tmp_path / name) if arg == name else arg for arg in _arguments(rest) or []]
    placeholders = {"CKPT": str(tmp_path / "x.ckpt"), "FOLDER": str(tmp_path)}
    run_parse_only(module, [placeholders.get(arg, arg) for arg in args], print_config=False)


# ---------------------------------------------------------------------------------------------
# Generated tables: each marked table is what its result file renders (make docs)
# ---------------------------------------------------------------------------------------------
def generated_table_params() -> list:
    from benchmarks.doc_tables import marked_tables

    chosen = []
    for path in doc_files():
        for source, block in marked_tables(path.read_text(encoding="utf-8")):
            where = str(path.relative_to(ROOT))
            chosen.append(pytest.param(where, source, block, id=f"{where}:{source}"))
    return chosen


@pytest.mark.parametrize("where, source, block", generated_table_params())
def test_generated_tables_match_their_results(where: str, source: str, block: str) -> None:
    from benchmarks.doc_tables import render

    result = json.loads((ROOT / source).read_text(encoding="utf-8"))
    missing = {"command", "machine", "date", "output"} - set(result)
    assert not missing, f"{source} lacks {sorted(missing)}"
    assert block == render(result), f"{where}: the table differs from {source}: run make docs"


def test_some_table_is_generated() -> None:
    """The marker pattern still matches: a typo in it must not make the check above vacuous."""
    assert generated_table_params()


# ---------------------------------------------------------------------------------------------
# Options quoted alone: `--data.sampler weighted`, `--model.init_args.lr 0.001`, `--resume last`
# ---------------------------------------------------------------------------------------------
# Options of other tools that the docs quote (sbatch, torchrun): not ours to check.
OTHER_TOOLS_OPTIONS = {"nodes", "ntasks-per-node", "gpus-per-node", "nproc_per_node", "master_addr"}


def option_claim(text: str, kind: str):
    match = re.match(r"^--([\w.-]+)", text) if kind == "inline" else None
    return (match.group(1), text) if match else None


def model_configs() -> list[str]:
    """The configs that name a model (configs/cnn.yaml, configs/resnet18.yaml, ...)."""
    return [
        str(path.relative_to(ROOT))
        for path in sorted(ROOT.glob("configs/*.yaml"))
        if "model" in (yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    ]


def _parses_with_some_model_config(words: list[str]) -> str | None:
    """None when ``fit --config C WORDS`` parses for some model config C, else the errors."""
    errors = []
    for config in model_configs():
        try:
            run_parse_only("project", ["fit", "--config", config, *words], print_config=False)
            return None
        except AssertionError as error:
            errors.append(f"{config}: {error}")
    return "; ".join(errors)


@pytest.mark.parametrize("where, claim, line", params(option_claim))
def test_quoted_options_exist(where: str, claim: tuple[str, str], line: str) -> None:
    key, span = claim
    if key in OTHER_TOOLS_OPTIONS:
        return
    words = None if "..." in span or "|" in span else _arguments(span)
    if words and len(words) > 1 or "=" in span:  # an option with its value: it must parse
        error = _parses_with_some_model_config(words or [])
        if error is None:
            return
        assert key.split(".")[0] not in ("data", "model", "trainer", "config"), f"{where}: {error}"
    # an option named alone, or one of another command (--resume, --k): it exists somewhere
    defaults = [d for config in model_configs() for d in [config_defaults(config)]]
    known = any(_matches(flat, key) for flat in defaults)
    written = re.search(rf"[\"'\s]--{re.escape(key)}\b|\b{re.escape(key)}\b", CODE)
    assert known or (written and "." not in key), f"{where}: no command has an option --{key}"


_CONFIG_DEFAULTS: dict[str, dict[str, object]] = {}


def config_defaults(config: str) -> dict[str, object]:
    """What ``python -m project fit --config CONFIG`` parses to, flattened."""
    if config not in _CONFIG_DEFAULTS:
        namespace = run_parse_only("project", ["fit", "--config", config], print_config=False)
        _CONFIG_DEFAULTS[config] = flatten(namespace)
    return _CONFIG_DEFAULTS[config]


def test_every_kind_of_claim_is_found() -> None:
    """The readers above still find claims: a broken pattern must not make the checks vacuous."""
    assert (ROOT / "README.md") in doc_files()
    counts = {
        "names": len(params(name_claim)),
        "commands": len(params(command_claim)),
        "config values": len(params(config_claim)),
        "names in files": len(names_in_file_params()),
        "example configs": len(example_config_params()),
        "options": len(params(option_claim)),
    }
    assert counts["commands"] >= 20 and counts["names"] >= 100, counts
    assert all(counts.values()), counts
