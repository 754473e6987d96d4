"""The exercise checkers are tested like code: they must pass the reference solutions, fail every
check of the untouched exercise files (each with its own message), and catch each listed mistake
in a deliberately broken copy of the solution (a mutant) with the message for that mistake.

Exercises are discovered by number (exercises/NN_*.py with exercises/checks/check_NN_*.py), so a
new exercise joins these tests without an edit here; a checker that sets ``SLOW = True`` is marked
slow, and its own ``MUTANTS`` list [(old, new, expected words)] is run too.

Exercise 1's checks run as on a filesystem that lists names sorted (NTFS, APFS): the checker's own
reverse listing must still show an unsorted attempt, where luck would otherwise hide it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exercises.check import (
    SAME,
    SKIPPED,
    checker,
    exercise_file,
    exercise_numbers,
    iter_checks,
    main,
    run_checks,
    solution_file,
)
from exercises.checks.check_01_dataset import Listing

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


@pytest.fixture
def sorted_filesystem(monkeypatch):
    """os.listdir and os.scandir (so os.walk, Path.iterdir and Path.glob too) list names sorted,
    as NTFS and APFS often do: an unsorted attempt then gets the sorted order by luck."""
    real_listdir, real_scandir = os.listdir, os.scandir

    def scandir(path="."):
        with real_scandir(path) as entries:
            return Listing(sorted(entries, key=lambda entry: entry.name))

    monkeypatch.setattr(os, "listdir", lambda path=".": sorted(real_listdir(path)))
    monkeypatch.setattr(os, "scandir", scandir)


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
def test_solution_passes_every_check(number, sorted_filesystem):
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
    told = [r.message for r in results if r.message not in (SAME, SKIPPED)]
    assert len(set(told)) == len(told), told  # a message is said once; then "same error as above"


# Exercise 1's solution finds its class names with these lines.
CLASSES = (
    "    classes = sorted(\n"
    "        entry.name\n"
    "        for entry in os.scandir(root)\n"
    '        if entry.is_dir() and not entry.name.startswith(".")\n'
    "    )"
)

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
        # Issue 39: unsorted listings, run here on a sorted-order filesystem (the fixture).
        (
            "unsorted_listdir",
            CLASSES,
            "    classes = [\n"
            "        name\n"
            "        for name in os.listdir(root)\n"
            '        if os.path.isdir(os.path.join(root, name)) and not name.startswith(".")\n'
            "    ]",
            "finds_classes",
            "classes ['dog', 'cat', 'bird'] are not sorted",
        ),
        (
            "unsorted_scandir",
            "    classes = sorted(\n        entry.name",
            "    classes = list(\n        entry.name",
            "finds_classes",
            "classes ['dog', 'cat', 'bird'] are not sorted",
        ),
        (
            "unsorted_iterdir",
            CLASSES,
            "    classes = [\n"
            "        p.name\n"
            "        for p in Path(root).iterdir()\n"
            "        if p.is_dir() and not p.name.startswith('.')\n"
            "    ]",
            "finds_classes",
            "classes ['dog', 'cat', 'bird'] are not sorted",
        ),
        (
            "labels_in_listing_order",  # sorted names, but the indices from an unsorted listing
            "    class_to_index = {name: index for index, name in enumerate(classes)}",
            "    class_to_index = {\n"
            "        entry.name: index\n"
            "        for index, entry in enumerate(\n"
            '            e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")\n'
            "        )\n"
            "    }",
            "finds_classes",
            "the labels follow the order of the folder listing, not the sorted class names",
        ),
        (
            "file_beside_the_class_folders",  # no is_dir(): README.txt becomes a class
            CLASSES,
            '    classes = sorted(name for name in os.listdir(root) if not name.startswith("."))',
            "finds_classes",
            "the file 'README.txt' beside the class folders became a class: keep only folders",
        ),
        # Issue 37: mistakes that leave the code running.
        (
            "label_from_the_parent_folder",
            "class_to_index[name]))",
            "class_to_index[Path(folder).name]))",
            "finds_classes",
            "labelled by that folder's own name (KeyError: 'more')",
        ),
        (
            "hidden_files_listed",  # macOS's ._a.png beside a.png
            'if not file.startswith(".") and Path(file)',
            "if Path(file)",
            "finds_classes",
            "hidden files were listed: ['cat/._a.png']",
        ),
        (
            "hidden_subfolders_walked",  # .ipynb_checkpoints inside a class folder
            '            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))\n',
            "",
            "finds_classes",
            "images inside a hidden folder of a class were listed",
        ),
        (
            "image_and_label_swapped",
            "        return image, label",
            "        return label, image",
            "converts_to_rgb",
            "the label comes first; return (image, label)",
        ),
        (
            "transform_not_applied",
            "        if self.transform is not None:\n            image = self.transform(image)\n",
            "",
            "converts_to_rgb",
            "__getitem__ must apply self.transform",
        ),
        (
            "mean_of_per_image_means",  # the images differ in size
            "pixels.mean(dim=1).tolist()",
            "torch.stack([i.reshape(3, -1).mean(dim=1) for i in images]).mean(dim=0).tolist()",
            "measures_mean_std",
            "an average of per-image means weighs a small image as much as a large one",
        ),
        (
            "one_mean_and_std_for_all_channels",
            "return pixels.mean(dim=1).tolist(), pixels.std(dim=1).tolist()",
            "return [pixels.mean().item()] * 3, [pixels.std().item()] * 3",
            "measures_mean_std",
            "one mean over all three channels together",
        ),
        (
            "variance_for_std",
            "pixels.std(dim=1).tolist()",
            "pixels.var(dim=1).tolist()",
            "measures_mean_std",
            "are the variances (std squared)",
        ),
        (
            "validation_shuffled",
            "DataLoader(val_set, shuffle=False",
            "DataLoader(val_set, shuffle=True",
            "loaders",
            "the validation loader shuffles",
        ),
        (
            "validation_drops_its_last_batch",  # drop_last in the settings both loaders share
            '        "persistent_workers": num_workers > 0,  # keep the workers between epochs\n',
            '        "persistent_workers": num_workers > 0,\n        "drop_last": True,\n',
            "loaders",
            "the validation loader drops its last, smaller batch (drop_last=True)",
        ),
        (
            "batch_size_hard_coded",
            '"batch_size": batch_size,',
            '"batch_size": 32,',
            "loaders",
            "batch_size is 32 / 32, expected 4",
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
        # Issue 37: order of operations, averages over batches of unequal size, modes, no_grad.
        (
            "zero_grad_once_before_the_loop",
            (
                "    for images, labels in loader:\n        images = images.to(device)  #",
                "        optimizer.zero_grad()  # gradients",
            ),
            (
                "    optimizer.zero_grad()\n"
                "    for images, labels in loader:\n"
                "        images = images.to(device)  #",
                "        # gradients",
            ),
            "zero_grad_before_backward",
            "gradients accumulate across steps: call optimizer.zero_grad()",
        ),
        (
            "zero_grad_between_backward_and_step",
            (
                "        optimizer.zero_grad()  # gradients",
                "        loss.backward()  # fills .grad of every parameter\n",
            ),
            (
                "        # gradients",
                "        loss.backward()\n        optimizer.zero_grad()\n",
            ),
            "zero_grad_before_backward",
            "optimizer.step() saw zero gradients: zero_grad() ran between backward() and step()",
        ),
        (
            "no_backward",
            "        loss.backward()  # fills .grad of every parameter\n",
            "",
            "zero_grad_before_backward",
            "loss.backward() was never called",
        ),
        (
            "no_step",
            "        optimizer.step()  # uses .grad: only after backward()\n",
            "",
            "zero_grad_before_backward",
            "train_one_epoch never called optimizer.step()",
        ),
        (
            "step_once_per_epoch",  # also: plural forms
            (
                "        optimizer.step()  # uses .grad: only after backward()\n",
                "    return total_loss / total_images\n",
            ),
            ("", "    optimizer.step()\n    return total_loss / total_images\n"),
            "zero_grad_before_backward",
            "1 optimizer step for 3 batches: one step per batch, inside the loop",
        ),
        (
            "training_forward_under_no_grad",
            "        logits = model(images)  # (batch, classes)\n",
            "        with torch.no_grad():\n            logits = model(images)\n",
            "loss_of_raw_logits",
            "the loss has no graph to go back through: it was computed under torch.no_grad()",
        ),
        (
            "cross_entropy_arguments_swapped",  # a NotImplementedError of torch's: no TODO
            "loss = F.cross_entropy(logits, labels)",
            "loss = F.cross_entropy(labels, logits)",
            "loss_of_raw_logits",
            "F.cross_entropy got the labels first: the order is F.cross_entropy(logits, labels)",
        ),
        (
            "to_device_result_thrown_away",
            "        images = images.to(device)  # the batch",
            "        images.to(device)  # the batch",
            "moves_batches_to_device",
            "images.to(device) was called, but its result was thrown away",
        ),
        (
            "eval_without_parentheses",
            "    model.eval()  # dropout off",
            "    model.eval  # dropout off",
            "evaluates_in_eval_mode",
            "model.eval alone does nothing",
        ),
        (
            "no_grad_without_with",
            ("@torch.no_grad()  #", "    model.eval()  # dropout off"),
            ("#", "    torch.no_grad()\n    model.eval()  # dropout off"),
            "evaluates_without_grad",
            "a bare torch.no_grad() call on a line of its own does nothing",
        ),
        (
            "training_loss_mean_of_batch_means",
            (
                "total_loss += loss.item() * labels.shape[0]",
                "    return total_loss / total_images\n",
            ),
            ("total_loss += loss.item()", "    return total_loss / len(loader)\n"),
            "returns_mean_training_loss",
            "the mean of the batch means counts the last batch (2 images, not 4)",
        ),
        (
            "training_loss_divided_by_batches",
            "    return total_loss / total_images\n",
            "    return total_loss / len(loader)\n",
            "returns_mean_training_loss",
            "the sum over the images was divided by the number of batches",
        ),
        (
            "training_loss_assumes_full_batches",
            "        total_images += labels.shape[0]\n    return total_loss / total_images\n",
            "        total_images += loader.batch_size\n    return total_loss / total_images\n",
            "returns_mean_training_loss",
            "batch_size images were counted for every batch, but the last batch has only 2",
        ),
        (
            "accuracy_mean_of_batch_accuracies",
            ("correct += (predictions == labels).sum().item()", "correct / total_images"),
            ("correct += (predictions == labels).float().mean().item()", "correct / len(loader)"),
            "accuracy_over_images",
            "the mean of the batch accuracies counts the last batch (2 images)",
        ),
        (
            "validation_loss_mean_of_batch_means",
            ('reduction="sum").item()', "return total_loss / total_images, correct"),
            (").item()", "return total_loss / len(loader), correct"),
            "accuracy_over_images",
            "evaluate's mean loss is",
        ),
        (
            "evaluate_returns_accuracy_first",
            "return total_loss / total_images, correct / total_images",
            "return correct / total_images, total_loss / total_images",
            "accuracy_over_images",
            "the accuracy first, then the loss; return (mean loss, accuracy)",
        ),
        (
            "argmax_without_dim",  # one index over the flattened batch
            "predictions = logits.argmax(dim=1)",
            "predictions = logits.argmax()",
            "accuracy_over_images",
            "predictions are logits.argmax(dim=1)",
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
        # Issue 37: which state a checkpoint restores, and from which epoch.
        (
            "epoch_plus_one",
            '    return checkpoint["epoch"]',
            '    return checkpoint["epoch"] + 1',
            "returns_epoch",
            "adding 1 skips one epoch",
        ),
        (
            "returns_the_whole_checkpoint",
            '    return checkpoint["epoch"]',
            "    return checkpoint",
            "returns_epoch",
            "load_checkpoint returned the whole checkpoint (a dict): return checkpoint['epoch']",
        ),
        (
            "missing_file_returns_none",
            "        return 0\n",
            "        return\n",
            "handles_missing_file",
            "no checkpoint, yet load_checkpoint returned None: return 0",
        ),
        (
            "map_location_cuda_hard_coded",
            "map_location=device,",
            'map_location="cuda",',
            "loads_with_map_location",
            "map_location='cuda', but the device asked for was 'cpu'",
        ),
        (
            "optimizer_state_dict_without_parentheses",
            '"optimizer": optimizer.state_dict(),',
            '"optimizer": optimizer.state_dict,',
            "saves_state_dicts",
            "the checkpoint holds a method, not what it returns",
        ),
        (
            "torch_save_arguments_swapped",
            "torch.save(checkpoint, path)",
            "torch.save(path, checkpoint)",
            "creates_folder",
            "torch.save got its arguments the other way round: torch.save(checkpoint, path)",
        ),
        (
            "a_new_models_weights_saved",  # a network built again in save_checkpoint
            '"model": model.state_dict(),',
            '"model": nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).state_dict(),',
            "saves_state_dicts",
            "the checkpoint does not hold the weights of the model it was given",
        ),
        (
            "whole_model_refused_by_a_safe_load",  # PyTorch's own text replaced by the mistake
            '"model": model.state_dict(),',
            '"model": model,',
            "returns_epoch",
            "torch.load(weights_only=True) refused the file: it holds pickled Python objects",
        ),
    ],
}

# Exercise 4's mutants (its checks build a ResNet18: marked slow with the checker): the check that
# catches each runs alone, never the real fine-tune.
MUTANTS[4] = [
    (
        "scheduler_stepped_per_epoch",
        (
            "        scheduler.step()  # after optimizer.step(): the next batch gets the next LR\n",
            "        total_images += labels.shape[0]\n    return total_loss / total_images\n",
        ),
        (
            "",
            "        total_images += labels.shape[0]\n"
            "    scheduler.step()\n"
            "    return total_loss / total_images\n",
        ),
        "training_epoch",
        "for all 3 steps of the epoch: call scheduler.step() once per batch",
    ),
    (
        "cosine_over_epochs_stepped_per_batch",
        "torch.optim.lr_scheduler.OneCycleLR(\n"
        "        optimizer, max_lr=0.01, total_steps=epochs * steps_per_epoch\n    )",
        "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)",
        "optimizer_and_schedule",
        "a schedule sized in epochs (CosineAnnealingLR(T_max=epochs), StepLR) but stepped every "
        "batch runs past its end",
    ),
    (
        "zero_grad_forgotten",
        "        optimizer.zero_grad()\n        with torch.autocast",
        "        with torch.autocast",
        "training_epoch",
        "the step of batch 2 used the gradients of batches 1 to 2 added up",
    ),
    (
        "zero_grad_between_backward_and_step",
        (
            "        optimizer.zero_grad()\n        with torch.autocast",
            "        scaler.scale(loss).backward()  # outside autocast",
        ),
        (
            "        with torch.autocast",
            "        scaler.scale(loss).backward()\n        optimizer.zero_grad()  #",
        ),
        "training_epoch",
        "optimizer.step() found no gradients: zero_grad() ran between backward() and step()",
    ),
    (
        "training_loss_mean_of_batch_means",
        (
            "        total_loss += loss.item() * labels.shape[0]\n"
            "        total_images += labels.shape[0]\n"
            "    return total_loss / total_images\n",
        ),
        (
            "        total_loss += loss.item()\n"
            "        total_images += labels.shape[0]\n"
            "    return total_loss / len(loader)\n",
        ),
        "training_epoch",
        "the mean of the batch means counts the last batch (4 images, not 8)",
    ),
    (
        "fit_returns_the_last_accuracy",
        "    return best\n\n\ndef loaders",
        "    return accuracy\n\n\ndef loaders",
        "keeps_the_best_epoch",
        "fit returned 0.7; the best validation accuracy was 0.8: return the best",
    ),
    (
        "fit_validates_on_the_training_data",
        "evaluate(model, val_loader, device)",
        "evaluate(model, train_loader, device)",
        "keeps_the_best_epoch",
        "fit validated on the training loader",
    ),
    (
        "optimizer_made_every_epoch",
        "    optimizer, scheduler = make_optimizer(model, epochs, len(train_loader))\n"
        "    best = -1.0\n    for epoch in range(epochs):\n",
        "    best = -1.0\n    for epoch in range(epochs):\n"
        "        optimizer, scheduler = make_optimizer(model, epochs, len(train_loader))\n",
        "keeps_the_best_epoch",
        "fit called make_optimizer 3 times, once per epoch",
    ),
    (
        "steps_per_epoch_counts_images",
        "make_optimizer(model, epochs, len(train_loader))",
        "make_optimizer(model, epochs, len(train_loader.dataset))",
        "keeps_the_best_epoch",
        "fit gave make_optimizer steps_per_epoch=24, but an epoch has len(train_loader) = 3 "
        "batches (not one step per image)",
    ),
    (
        "whole_model_saved",
        '{"model": model.state_dict(), "epoch": epoch, "val_acc": accuracy}, checkpoint',
        "model, checkpoint",
        "keeps_the_best_epoch",
        "fit saved the whole model (torch.save(model, ...))",
    ),
]


def mutant_params():
    found = []
    for number in exercise_numbers():
        module = checker(number)
        slow = [pytest.mark.slow] if getattr(module, "SLOW", False) else []
        for name, old, new, check, words in MUTANTS.get(number, []):
            found.append(
                pytest.param(number, old, new, [check], words, id=f"{number}-{name}", marks=slow)
            )
        for index, (old, new, words) in enumerate(getattr(module, "MUTANTS", [])):
            checks = cheap_checks(number)  # a mutant never needs the long real run
            found.append(
                pytest.param(number, old, new, checks, words, id=f"{number}-own{index}", marks=slow)
            )
    return found


@pytest.mark.parametrize("number, old, new, checks, words", mutant_params())
def test_mutant_is_caught_with_its_message(number, old, new, checks, words, tmp_path, request):
    if number == 1:  # as on NTFS / APFS: the checker must not rely on an unsorted listing
        request.getfixturevalue("sorted_filesystem")
    source = solution_file(number).read_text()
    # One replacement, or a tuple of them where one mistake spans two places.
    olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
    for one_old, one_new in zip(olds, news, strict=True):
        assert one_old in source, "the mutant no longer matches the solution: update it"
        source = source.replace(one_old, one_new)
    mutant = tmp_path / solution_file(number).name
    mutant.write_text(source)
    results = []
    for result in iter_checks(number, mutant, None if checks == [None] else checks):
        results.append(result)
        if checks != [None] and not result.ok and words in result.line():
            break  # caught: the checks after it need not run
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
    assert len([line for line in lines if line.startswith(("  ok", "  FAIL", "  skip"))]) == len(
        checker(2).CHECKS
    )
    assert (
        "  FAIL  each step uses the gradients of its own batch only: gradients accumulate "
        "across steps: call optimizer.zero_grad() before loss.backward() in every iteration "
        "(train_one_epoch)" in lines
    )
    # The whole-loop check says nothing a named mistake above has not: skipped, in one line.
    assert (
        "  skip  train_one_epoch and evaluate together learn a simple problem: skipped: fix the "
        "failing check above first" in lines
    )
    assert lines[-1] == "1 of 10 checks failed, 1 skipped. Fix the first one and run this again."


def mutant_of(number: int, tmp_path: Path, *changes: tuple[str, str]) -> Path:
    """A copy of the solution with each (old, new) replaced once."""
    source = solution_file(number).read_text()
    for old, new in changes:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    mutant = tmp_path / solution_file(number).name
    mutant.write_text(source)
    return mutant


def test_a_failed_freeze_check_skips_the_real_fine_tune(tmp_path, monkeypatch):
    """Issue 39: an attempt that trains the whole ResNet18 fails the freeze check, and the real
    run (up to half an hour for it) is skipped, in one line. The challenge files are pointed at a
    missing folder: were the skip broken, the check would fail at once, not train."""
    monkeypatch.setattr(checker(4), "CHALLENGE_DATA", tmp_path / "no-data")
    mutant = mutant_of(
        4, tmp_path, ("        parameter.requires_grad = False  # freeze", "        pass  #")
    )
    names = ["head_is_the_only_trainable_layer", "reaches_85_percent"]
    freeze, real_run = iter_checks(4, mutant, names)
    assert not freeze.ok and "only fc's two should" in freeze.message
    assert real_run.skipped and real_run.message == SKIPPED == (
        "skipped: fix the failing check above first"
    )
    assert real_run.line().startswith("  skip  the real run reaches more than 85%")


def test_one_crash_is_told_once(tmp_path, capsys):
    """One crash, one line: the checks that hit the same error say "same error as above"."""
    mutant = mutant_of(1, tmp_path, ("    samples = []\n", "    samples = []\n    sample.append\n"))
    assert main(["1", "--file", str(mutant)]) == 1
    lines = capsys.readouterr().out.splitlines()
    crashed = [line for line in lines if "crashed: NameError: name 'sample' is not defined" in line]
    assert len(crashed) == 1, lines
    same = [line for line in lines if line.endswith(f": {SAME}")]
    assert len(same) == 2 and all(line.startswith("  FAIL  ") for line in same), lines
    assert len(set(lines)) == len(lines)
    assert lines[-1] == "3 of 6 checks failed. Fix the first one and run this again."


def test_moved_images_but_unmoved_labels_fail_one_check(tmp_path):
    """The labels left on the CPU are the device check's mistake, not the train-mode check's."""
    mutant = mutant_of(
        2, tmp_path, ("        labels = labels.to(device)\n        optimizer", "        optimizer")
    )
    failures = [r for r in iter_checks(2, mutant) if not r.ok]
    assert [r.title for r in failures] == [
        "inputs and targets go to the model's device (train_one_epoch and evaluate)",
        "train_one_epoch and evaluate together learn a simple problem",
    ]
    assert "the labels reached cross_entropy()" in failures[0].message
    assert failures[1].skipped


def test_a_wrong_save_is_not_blamed_on_load_checkpoint(tmp_path):
    """A checkpoint that holds another model's weights: the save check says so, and the checks
    that load it are skipped rather than telling the learner to fix a load_checkpoint that is
    right."""
    mutant = mutant_of(
        3,
        tmp_path,
        (
            '"model": model.state_dict(),',
            '"model": nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).state_dict(),',
        ),
    )
    results = {r.title: r for r in iter_checks(3, mutant)}
    failed = [r for r in results.values() if not r.ok]
    assert "does not hold the weights of the model it was given" in failed[0].message
    assert [r.skipped for r in failed[1:]] == [True, True, True], [r.line() for r in failed]
    assert not any("load_checkpoint" in r.message for r in failed), [r.line() for r in failed]


def test_a_known_error_is_told_by_its_mistake_not_by_pytorchs_text(tmp_path):
    """A safe load of a pickled model: the explanation, the error's name and place; not the
    ~1,000 characters of PyTorch's UnpicklingError."""
    mutant = mutant_of(3, tmp_path, ('"model": model.state_dict(),', '"model": model,'))
    (result,) = iter_checks(3, mutant, ["returns_epoch"])
    assert result.message.startswith("torch.load(weights_only=True) refused the file")
    assert f"(UnpicklingError at {mutant.name}:" in result.message
    assert result.message.endswith(", in load_checkpoint)")
    assert "Weights only load failed" not in result.message


def test_not_implemented_error_of_torchs_own_is_no_todo(tmp_path):
    """A NotImplementedError that PyTorch raises is a crash with its cause, not "not written
    yet" (only the exercise's TODOs are)."""
    mutant = mutant_of(
        2,
        tmp_path,
        ("loss = F.cross_entropy(logits, labels)", "loss = F.cross_entropy(labels, logits)"),
    )
    (result,) = iter_checks(2, mutant, ["loss_of_raw_logits"])
    assert result.message.startswith("F.cross_entropy got the labels first")
    assert "not written yet" not in result.message


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
