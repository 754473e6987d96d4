"""The exercise checkers are tested like code: they must pass the reference solutions, fail every
check of the untouched exercise files (each with its own message), and catch each listed mistake
in a deliberately broken copy of the solution (a mutant) with the message for that mistake.

Exercises are discovered by number (exercises/NN_*.py with exercises/checks/check_NN_*.py), so a
new exercise joins these tests without an edit here; a checker that sets ``SLOW = True`` is marked
slow, and its own ``MUTANTS`` list [(old, new, expected words)] is run too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exercises.check import (
    checker,
    exercise_file,
    exercise_numbers,
    iter_checks,
    main,
    run_checks,
    solution_file,
)

from .helpers import run_command

ROOT = Path(__file__).resolve().parents[1]


def params(numbers):
    return [
        pytest.param(
            n,
            id=f"exercise{n}",
            marks=[pytest.mark.slow] if getattr(checker(n), "SLOW", False) else [],
        )
        for n in numbers
    ]


def untouched(number: int, tmp_path: Path) -> Path:
    """The exercise file as committed: a learner's edits in the working tree must not make
    ``make test`` fail. Outside a git checkout (or before the file is committed): the file."""
    path = exercise_file(number)
    relative = path.relative_to(ROOT).as_posix()
    try:
        text = subprocess.run(
            ["git", "show", f"HEAD:{relative}"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return path
    if text.returncode != 0:
        return path
    copy = tmp_path / path.name
    copy.write_text(text.stdout)
    return copy


def test_every_exercise_is_found():
    assert {1, 2, 3, 4} <= set(exercise_numbers())


def needing_files(number: int, missing_only: bool) -> set[str]:
    """Names of the checks that need files made on request (``REQUIRES_FILES``)."""
    required = getattr(checker(number), "REQUIRES_FILES", {})
    return {
        name
        for name, paths in required.items()
        if not missing_only or not all(Path(p).exists() for p in paths)
    }


def cheap_checks(number: int) -> list[str]:
    """Every check but those that need files made on request."""
    return [
        c.__name__ for c in checker(number).CHECKS if c.__name__ not in needing_files(number, False)
    ]


@pytest.mark.parametrize("number", params(exercise_numbers()))
def test_solution_passes_every_check(number):
    missing = needing_files(number, missing_only=True)
    names = [c.__name__ for c in checker(number).CHECKS if c.__name__ not in missing]
    results = list(iter_checks(number, solution_file(number), names))
    assert results, f"exercise {number} has no checks"
    assert [r.line() for r in results if not r.ok] == []
    assert [w for r in results for w in r.warnings] == []  # nor anything the checks cause
    if missing:  # run, but not proven here: say so (make challenge-data makes the files)
        pytest.skip(f"not run, their files are missing: {sorted(missing)}")


@pytest.mark.parametrize("number", params(exercise_numbers()))
def test_untouched_exercise_fails_every_check_with_its_own_message(number, tmp_path):
    results = run_checks(number, untouched(number, tmp_path))
    assert [r.line() for r in results if r.ok] == [], "checks that pass on the TODO file"
    assert [w for r in results for w in r.warnings] == []
    lines = [r.line() for r in results]
    assert len(set(lines)) == len(lines), lines


# (id, text of the solution, its broken replacement, the check that must catch it, words of
# that check's message). Each listed mistake of WORKSHOP.md / the exercise docstrings is here, and
# those found by writing wrong attempts as learners do (issue 25). A mistake in two places gives
# tuples of texts; a check of None marks a right variant that every check must pass, with the
# words in some check's note.
MUTANTS = {
    1: [
        (
            "no_rgb_conversion",
            'image = image.convert("RGB")',
            "image = image.copy()",
            "converts_to_rgb",
            "call .convert('RGB')",
        ),
        (
            "only_lowercase_suffixes",
            "Path(file).suffix.lower() in",
            "Path(file).suffix in",
            "handles_formats",
            "these image files were not found: ['cat/b.JPG']",
        ),
        (
            "no_subfolders",
            "os.walk(root / name)",
            "[(root / name, [], os.listdir(root / name))]",
            "handles_formats",
            "images in sub-folders of a class were not found",
        ),
        (
            "hidden_folder_as_class",
            'entry.is_dir() and not entry.name.startswith(".")',
            "entry.is_dir()",
            "finds_classes",
            "the hidden folder '.ipynb_checkpoints' became",
        ),
        (
            "no_scaling",
            "transforms.ToTensor(),",
            "transforms.PILToTensor(), transforms.Lambda(lambda x: x.float()),",
            "scales_and_normalizes",
            "not scaled to [0, 1]",
        ),
        (
            "imagenet_values",
            "transforms.Normalize(mean, std),",
            "transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),",
            "scales_and_normalizes",
            "wrong normalization values",
        ),
        (
            "no_normalize",
            "transforms.Normalize(mean, std),",
            "",
            "scales_and_normalizes",
            "no normalization",
        ),
        (
            "std_of_images_averaged",
            "pixels.std(dim=1)",
            "torch.stack([i.reshape(3, -1).std(dim=1) for i in images]).mean(dim=0)",
            "measures_mean_std",
            "not an average of per-image stds",
        ),
        (
            "no_shuffle",
            "DataLoader(train_set, shuffle=True",
            "DataLoader(train_set, shuffle=False",
            "loaders",
            "the training loader does not shuffle",
        ),
        (
            "no_workers",
            "DataLoader(train_set, shuffle=True, **common)",
            'DataLoader(train_set, shuffle=True, **{**common, "num_workers": 0, '
            '"persistent_workers": False})',
            "loaders",
            "num_workers is 0 / 2",
        ),
        (
            "population_std_accepted",  # divisor N, as sqrt(E[x^2] - E[x]^2): right, not a mistake
            "pixels.std(dim=1).tolist()",
            "pixels.std(dim=1, correction=0).tolist()",
            None,  # passes, and says which divisor it found
            "your std divides by N;",
        ),
        (
            "channels_mixed_by_view",  # view/reshape(-1, 3) of a (3, H, W) tensor, not permute
            "image.reshape(3, -1) for image in images], dim=1)",
            "image.view(-1, 3) for image in images], dim=0).T",
            "measures_mean_std",
            "mix the channels: image.view(-1, 3) / reshape(-1, 3)",
        ),
        (
            "resize_shorter_side_only",
            "transforms.Resize((image_size, image_size)),",
            "transforms.Resize(image_size),",
            "scales_and_normalizes",
            "Resize with one number scales the shorter side only",
        ),
        (
            "normalize_before_to_tensor",
            "            transforms.ToTensor(),  # uint8 0..255 (H, W, C) -> float 0..1 (C, H, W)\n"
            "            transforms.Normalize(mean, std),  # (x - mean) / std per channel\n",
            "            transforms.Normalize(mean, std),\n            transforms.ToTensor(),\n",
            "scales_and_normalizes",
            "Normalize computes on tensors, so it comes after ToTensor()",
        ),
        (
            "class_names_as_labels",
            "samples.append((Path(folder) / file, class_to_index[name]))",
            "samples.append((Path(folder) / file, name))",
            "finds_classes",
            "labels are class indices (int)",
        ),
        (
            "len_is_the_class_count",
            "        return len(self.samples)",
            "        return len(self.classes)",
            "converts_to_rgb",
            "__len__ returns the number of classes",
        ),
        (
            "pin_memory_forgotten",  # passed on a CPU before: the check now asks both worlds
            '        "pin_memory": torch.cuda.is_available(),',
            "",
            "loaders",
            "pin_memory is False / False on a machine with a GPU",
        ),
        (
            "pin_memory_always",
            '"pin_memory": torch.cuda.is_available(),',
            '"pin_memory": True,',
            "loaders",
            "pin_memory is True / True on a machine without a GPU",
        ),
    ],
    2: [
        (
            "no_zero_grad",
            "        optimizer.zero_grad()",
            "        pass",
            "zero_grad_before_backward",
            "gradients accumulate across steps: call optimizer.zero_grad() before loss.backward()",
        ),
        (
            "step_before_backward",
            "        loss.backward()  # fills .grad of every parameter\n"
            "        optimizer.step()  # uses .grad: only after backward()\n",
            "        optimizer.step()\n        loss.backward()\n",
            "step_after_backward",
            "optimizer.step() ran before loss.backward()",
        ),
        (
            "labels_not_on_device",
            "        labels = labels.to(device)\n        optimizer",
            "        optimizer",
            "moves_batches_to_device",
            "the labels reached cross_entropy()",
        ),
        (
            "images_not_on_device",
            "        images = images.to(device)  #",
            "        #",
            "moves_batches_to_device",
            "the images reached linear()",
        ),
        (
            "train_mode_missing",
            "    model.train()  #",
            "    #",
            "trains_in_train_mode",
            "training ran in eval mode",
        ),
        (
            "validation_in_train_mode",
            "    model.eval()  #",
            "    #",
            "evaluates_in_eval_mode",
            "validation ran in train mode",
        ),
        (
            "validation_without_no_grad",
            "@torch.no_grad()  #",
            "#",
            "evaluates_without_grad",
            "validation recorded an autograd graph",
        ),
        (
            "wrong_batch_dimension",
            "argmax(dim=1)",
            "argmax(dim=0)",
            "accuracy_over_images",
            "wrong batch dimension",
        ),
        (
            "loss_of_the_last_batch_only",
            "total_loss += loss.item() * labels.shape[0]",
            "total_loss = loss.item() * labels.shape[0]",
            "returns_mean_training_loss",
            "expected the mean loss of the epoch",
        ),
        (
            "accuracy_per_batch",
            "correct / total_images",
            "correct / len(loader)",
            "accuracy_over_images",
            "not of batches",
        ),
        (
            "loss_tensor_summed",  # returns a tensor that holds every batch's graph
            "total_loss += loss.item() * labels.shape[0]",
            "total_loss += loss * labels.shape[0]",
            "returns_mean_training_loss",
            "train_one_epoch returned a loss that is still attached to the autograd graph",
        ),
        (
            "evaluate_loss_tensor_summed_without_no_grad",
            ("@torch.no_grad()  #", 'reduction="sum").item()'),
            ("#", 'reduction="sum")'),
            "accuracy_over_images",
            "evaluate returned a loss that is still attached to the autograd graph",
        ),
        (
            "softmax_fed_to_cross_entropy",
            "loss = F.cross_entropy(logits, labels)",
            "loss = F.cross_entropy(F.softmax(logits, dim=1), labels)",
            "loss_of_raw_logits",
            "softmax was applied before F.cross_entropy",
        ),
        (
            "training_loss_summed_over_the_batch",  # evaluate's line copied into training
            "loss = F.cross_entropy(logits, labels)",
            'loss = F.cross_entropy(logits, labels, reduction="sum")',
            "loss_of_raw_logits",
            "the training loss is summed over the batch (reduction='sum')",
        ),
        (
            "nll_loss_of_raw_logits",
            "loss = F.cross_entropy(logits, labels)",
            "loss = F.nll_loss(logits, labels)",
            "loss_of_raw_logits",
            "F.nll_loss got raw logits",
        ),
        (
            "in_place_change_autograd_needs",
            "loss = F.cross_entropy(logits, labels)",
            "probabilities = logits.softmax(dim=1)\n"
            "        probabilities.clamp_(min=1e-7)  # softmax's backward needs its output\n"
            "        loss = F.nll_loss(probabilities.log(), labels)",
            "loss_of_raw_logits",
            "an in-place operation (x += ..., x.clamp_(...), x[...] = ...) changed a tensor "
            "that backward() still needed",
        ),
        (
            "backward_through_a_running_loss",
            "        loss.backward()  # fills",
            "        running = loss if total_images == 0 else running + loss\n"
            "        running.backward()  # fills",
            "zero_grad_before_backward",
            "backward() went twice through one batch's graph",
        ),
    ],
    3: [
        (
            "no_folder",
            "    path.parent.mkdir(parents=True, exist_ok=True)",
            "    pass",
            "creates_folder",
            "create it first with path.parent.mkdir",
        ),
        (
            "whole_model",
            '"model": model.state_dict(),',
            '"model": model,',
            "saves_state_dicts",
            "the checkpoint pickles Python objects",
        ),
        (
            "no_optimizer_state",
            '"optimizer": optimizer.state_dict(),',
            "",
            "resumes_exactly",
            "the checkpoint has no optimizer state",
        ),
        (
            "optimizer_not_restored",
            '    optimizer.load_state_dict(checkpoint["optimizer"])',
            "    pass",
            "resumes_exactly",
            "load_checkpoint does not restore the optimizer",
        ),
        (
            "no_map_location",
            "map_location=device, ",
            "",
            "loads_with_map_location",
            "torch.load without map_location",
        ),
        (
            "unsafe_load",
            "weights_only=True",
            "weights_only=False",
            "loads_with_map_location",
            "weights_only=False",
        ),
        (
            "no_existence_check",
            "    if not path.exists():",
            "    if False:",
            "handles_missing_file",
            "load_checkpoint crashed on a missing file",
        ),
        (
            "state_dict_without_parentheses",
            '"model": model.state_dict(),',
            '"model": model.state_dict,',
            "saves_state_dicts",
            "the checkpoint holds a method, not what it returns",
        ),
        (
            "whole_checkpoint_into_load_state_dict",
            'model.load_state_dict(checkpoint["model"])',
            "model.load_state_dict(checkpoint)",
            "resumes_exactly",
            "load_state_dict got the whole checkpoint",
        ),
        (
            "folder_must_not_exist",  # os.makedirs(folder) without exist_ok
            "path.parent.mkdir(parents=True, exist_ok=True)",
            "path.parent.mkdir(parents=True)",
            "creates_folder",
            "the second save, into the folder the first one created, failed",
        ),
    ],
}


def mutant_params():
    found = []
    for number in exercise_numbers():
        module = checker(number)
        slow = [pytest.mark.slow] if getattr(module, "SLOW", False) else []
        for name, old, new, check, words in MUTANTS.get(number, []):
            found.append(pytest.param(number, old, new, [check], words, id=f"{number}-{name}"))
        for index, (old, new, words) in enumerate(getattr(module, "MUTANTS", [])):
            checks = cheap_checks(number)  # a mutant never needs the long real run
            found.append(
                pytest.param(number, old, new, checks, words, id=f"{number}-own{index}", marks=slow)
            )
    return found


@pytest.mark.parametrize("number, old, new, checks, words", mutant_params())
def test_mutant_is_caught_with_its_message(number, old, new, checks, words, tmp_path):
    source = solution_file(number).read_text()
    # One replacement, or a tuple of them where one mistake spans two places.
    olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
    for one_old, one_new in zip(olds, news, strict=True):
        assert one_old in source, "the mutant no longer matches the solution: update it"
        source = source.replace(one_old, one_new)
    mutant = tmp_path / solution_file(number).name
    mutant.write_text(source)
    results = list(iter_checks(number, mutant, None if checks == [None] else checks))
    # Warnings come from the learner's file only (the broken code), never from the checks.
    warned = [w for r in results for w in r.warnings]
    assert all(f"(at {mutant.name}:" in w for w in warned), warned
    if checks == [None]:  # a right variant: every check passes, one says what it found
        lines = [r.line() for r in results]
        assert all(line.startswith("  ok") for line in lines), lines
        assert any(words in line for line in lines), lines
        return
    failures = [r.line() for r in results if not r.ok]
    assert any(words in line for line in failures), failures


@pytest.mark.slow  # a fresh interpreter imports torch: seconds
def test_runner_prints_one_line_per_check_and_exits_1(tmp_path):
    """What a learner sees: the runner as a command, on an attempt that forgot zero_grad()."""
    mutant = tmp_path / "attempt.py"
    source = solution_file(2).read_text()
    mutant.write_text(source.replace("        optimizer.zero_grad()", "        pass"))
    run = run_command(
        [sys.executable, "-m", "exercises.check", "2", "--file", str(mutant)], cwd=ROOT, check=False
    )
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"exercise 2: checking {mutant}"
    assert len([line for line in lines if line.startswith(("  ok", "  FAIL"))]) == len(
        checker(2).CHECKS
    )
    assert (
        "  FAIL  each step uses the gradients of its own batch only: gradients accumulate "
        "across steps: call optimizer.zero_grad() before loss.backward() in every iteration "
        "(train_one_epoch)" in lines
    )
    assert lines[-1].endswith("checks failed. Fix the first one and run this again.")


def test_runner_lines_stay_whole_when_the_learners_code_prints_without_newline(tmp_path, capsys):
    """A learner's print(..., end="") must not swallow the next check's line, and the output
    ends with a newline (make's error line, or the shell prompt, starts on a line of its own)."""
    attempt = tmp_path / "attempt.py"
    source = solution_file(3).read_text()
    old = 'print(f"no checkpoint at {path}: starting from epoch 0")'
    assert old in source
    attempt.write_text(source.replace(old, 'print("no checkpoint yet...", end="")'))
    assert main(["3", "--file", str(attempt)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("all 6 checks passed.\n"), out
    lines = out.splitlines()
    assert "no checkpoint yet..." in lines  # ended by the runner, not joined to a check's line
    assert len([line for line in lines if line.startswith("  ok    ")]) == len(checker(3).CHECKS)
