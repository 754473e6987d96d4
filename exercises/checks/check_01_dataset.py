"""Checker of exercise 1 (a custom Dataset and DataLoader): ``python -m exercises.check 1``.

Every check writes real image files with PIL into a temporary folder and runs the learner's code on
them: class folders with a hidden folder, a text file beside them and one inside, hidden files and a
hidden folder inside a class, nested sub-folders; PNG, JPEG (also upper-case .JPG), BMP and GIF
files; a greyscale, a palette and a CMYK image; a picture with known pixel values to test scaling
and normalization.

The order of a folder listing is the filesystem's: ext4 gives hash order, NTFS and APFS often give
names sorted, so an unsorted ``os.listdir`` passes by luck on many machines. While the learner's
``find_samples`` runs, ``os.listdir`` and ``os.scandir`` (which ``os.walk``, ``Path.iterdir`` and
``Path.glob`` use) list names in reverse order, so forgetting to sort shows on every machine; the
class folders are also created out of order.

``pin_memory`` is right when it follows the machine: on with a GPU, off without one. On a CPU-only
machine a loader that forgot it is off, right by accident, so checking against this machine alone
passes the mistake (and on a GPU machine, ``pin_memory=True`` hard-coded passes). The check asks
the learner's ``make_loaders`` twice instead, with torch's questions (``torch.cuda.is_available``,
``torch.cuda.device_count``, ``torch.accelerator.is_available``) answered as on a machine with a
GPU and as on one without; the loaders are built, never iterated, so nothing touches a GPU. A
decision taken some other way (an environment variable) is judged by this machine's answer only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import RandomSampler, SequentialSampler
from torchvision import transforms

from exercises.checks import Mistake, plural, require

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# The class-folder tree of the first two checks: file -> class (None: must not be listed). Written
# in this order: the class folders out of alphabetical order.
TREE = {
    "dog/d.bmp": "dog",
    "dog/e.png": "dog",
    "dog/notes.txt": None,
    "dog/.DS_Store": None,
    "cat/a.png": "cat",
    "cat/b.JPG": "cat",
    "cat/more/c.jpeg": "cat",
    "cat/._a.png": None,  # macOS's AppleDouble file beside a.png on a USB drive: not an image
    "cat/.ipynb_checkpoints/a-checkpoint.png": None,  # a hidden folder inside a class
    "bird/f.gif": "bird",
    ".ipynb_checkpoints/x.png": None,
    "README.txt": None,  # a file beside the class folders: no class
}
NESTED = {"more", ".ipynb_checkpoints"}  # folder names inside class folders


def save(path: Path, mode: str = "RGB", size=(6, 5), seed: int = 0) -> Path:
    """A small random picture in ``mode``, in the format of the file's extension."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".txt", "") or path.name.startswith((".DS", "._")):
        path.write_bytes(b"not an image")
    else:
        image.save(path, format={".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix))
    return path


def write_tree(root: Path) -> None:
    for index, relative in enumerate(TREE):
        save(root / relative, seed=index)


class Listing:
    """``os.scandir``'s iterator over ``entries``: iterable, a context manager, closable."""

    def __init__(self, entries):
        self.entries = iter(entries)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.entries)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        self.entries = iter(())


@contextlib.contextmanager
def reverse_listing():
    """While active, ``os.listdir`` and ``os.scandir`` list a folder's names in reverse order
    (any filesystem order is allowed; reverse is never sorted for two names or more), so code
    that forgets to sort shows it on every machine, whatever its filesystem returns."""
    real_listdir, real_scandir = os.listdir, os.scandir

    def listdir(path="."):
        return sorted(real_listdir(path), reverse=True)

    def scandir(path="."):
        with real_scandir(path) as entries:
            return Listing(sorted(entries, key=lambda entry: entry.name, reverse=True))

    os.listdir, os.scandir = listdir, scandir
    try:
        yield
    finally:
        os.listdir, os.scandir = real_listdir, real_scandir


def find_samples(exercise, root: Path):
    """The learner's find_samples(root), with folders listed in reverse order; a KeyError for a
    folder inside a class folder named."""
    try:
        with reverse_listing():
            return exercise.find_samples(root)
    except KeyError as error:
        if error.args and error.args[0] in NESTED:
            raise Mistake(
                f"an image in a folder inside a class folder was labelled by that folder's own "
                f"name (KeyError: {error.args[0]!r}): the label is the class folder directly "
                "under root (the name the os.walk started from), not the image's parent folder"
            ) from None
        raise


def listed(exercise, root: Path) -> tuple[dict[str, int], list[str]]:
    """The learner's find_samples, as {path relative to root: label} and the class names."""
    samples, classes = find_samples(exercise, root)
    found = {}
    for path, label in samples:
        require(
            isinstance(label, int) or (torch.is_tensor(label) and not label.is_floating_point()),
            f"the label of {Path(path).name} is {label!r}, a {type(label).__name__}: labels are "
            "class indices (int), class_to_index[folder name], so cross_entropy can use them "
            "(find_samples)",
        )
        found[Path(path).resolve().relative_to(root.resolve()).as_posix()] = int(label)
    return found, list(classes)


# ----------------------------------------------------------------------------- the checks


def finds_classes(exercise) -> None:
    """finds the class folders (sorted, no hidden ones) and labels each image by its folder"""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_tree(root)
        found, classes = listed(exercise, root)
        files = [name for name in classes if (root / name).is_file()]
    hidden = [name for name in classes if name.startswith(".")]
    require(
        not hidden,
        f"the hidden folder {hidden[0]!r} became a class: skip names starting with '.' "
        "(Jupyter and macOS leave them in image folders)"
        if hidden
        else "",
    )
    require(
        not files,
        f"the file {files[0]!r} beside the class folders became a class: keep only folders "
        "(entry.is_dir(), or os.path.isdir(os.path.join(root, name)))"
        if files
        else "",
    )
    require(
        set(classes) == {"bird", "cat", "dog"},
        f"classes {classes}, expected ['bird', 'cat', 'dog']: the class names are the names of "
        "the sub-folders of root",
    )
    require(
        classes == sorted(classes),
        f"classes {classes} are not sorted: the order of os.listdir / os.scandir / Path.iterdir "
        "is the filesystem's (this check lists folders in reverse; NTFS and APFS often list "
        "them sorted, ext4 does not), so the class indices would differ between machines; "
        "sort the folder names",
    )
    junk = [path for path in found if TREE.get(path, "?") is None]
    hidden_files = [path for path in junk if Path(path).name.startswith(".")]
    require(
        not hidden_files,
        f"hidden files were listed: {hidden_files}: macOS writes ._name files beside images "
        "(on USB drives), and they are no images; skip file names starting with '.'",
    )
    in_hidden = [path for path in junk if any(p.startswith(".") for p in path.split("/")[1:-1])]
    require(
        not in_hidden,
        f"images inside a hidden folder of a class were listed: {in_hidden}: Jupyter's "
        ".ipynb_checkpoints holds copies; in os.walk, prune them: "
        "subfolders[:] = [d for d in subfolders if not d.startswith('.')]",
    )
    require(
        not junk,
        f"files that are not images were listed: {junk}: keep only files whose lower-cased "
        "suffix is an image extension (and skip hidden files)",
    )
    wrong = {path: label for path, label in found.items() if label != classes.index(TREE[path])}
    if wrong:
        path, label = next(iter(wrong.items()))
        expected = classes.index(TREE[path])
        by_listing = sorted(classes, reverse=True)  # the order this check's listing gave
        if all(label == by_listing.index(TREE[p]) for p, label in found.items()):
            raise Mistake(
                f"{path} has label {label}, expected {expected}: the labels follow the order of "
                "the folder listing, not the sorted class names; number the sorted names, "
                "class_to_index = {name: index for index, name in enumerate(classes)}"
            )
        raise Mistake(
            f"{path} has label {label}, expected {expected} (the index of its folder "
            f"{TREE[path]!r} in the sorted class names)"
        )


def handles_formats(exercise) -> None:
    """finds .png, .jpg, .JPG, .jpeg, .bmp and .gif files, also in sub-folders"""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_tree(root)
        found, _ = listed(exercise, root)
    expected = [path for path, label in TREE.items() if label is not None]
    nested = [path for path in expected if path.count("/") > 1 and path not in found]
    require(
        not nested,
        f"images in sub-folders of a class were not found ({nested}): walk the class folder "
        "with os.walk (or Path.rglob), not just os.listdir",
    )
    missing = [path for path in expected if path not in found]
    require(
        not missing,
        f"these image files were not found: {missing}: images come as png, jpg, JPG, jpeg, bmp, "
        "gif...; compare Path(file).suffix.lower() with a set of image extensions",
    )


def converts_to_rgb(exercise) -> None:
    """reads greyscale (L), palette (P) and CMYK images as 3-channel RGB"""
    modes = {"a/grey.png": "L", "a/palette.png": "P", "b/cmyk.jpg": "CMYK", "b/colour.png": "RGB"}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for index, (relative, mode) in enumerate(modes.items()):
            save(root / relative, mode=mode, seed=index)
        dataset = exercise.FolderDataset(root, transform=transforms.ToTensor())
        require(
            len(dataset) != len(dataset.classes) or len(dataset) == 4,
            f"len(dataset) is {len(dataset)} for 4 images in {len(dataset.classes)} classes: "
            "__len__ returns the number of classes; it is the number of samples",
        )
        require(len(dataset) == 4, f"len(dataset) is {len(dataset)} for 4 images: __len__")
        for index in range(len(dataset)):
            image, label = dataset[index]
            path = Path(dataset.samples[index][0]).resolve().relative_to(root.resolve())
            mode = modes[path.as_posix()]
            require(
                not (isinstance(image, int) and not isinstance(label, int)),
                f"dataset[{index}] is ({image!r}, {type(label).__name__}): the label comes "
                "first; return (image, label), the order every loop unpacks "
                "(for images, labels in loader)",
            )
            require(
                torch.is_tensor(image),
                f"dataset[{index}]'s image is of type {type(image).__name__}, not a tensor: "
                "__getitem__ must "
                "apply self.transform to the image",
            )
            require(
                image.shape[0] == 3,
                f"{path.name} (a {mode} image) gave {plural(image.shape[0], 'channel')}, "
                "expected 3: "
                "call .convert('RGB') on the image you open in __getitem__",
            )


def scales_and_normalizes(exercise) -> None:
    """build_transform scales pixels to [0, 1] and normalizes with the mean and std given"""
    mean, std = [0.2, 0.3, 0.4], [0.5, 0.25, 0.125]
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    transform = exercise.build_transform(8, mean, std)
    try:
        result = transform(Image.fromarray(pixels, "RGB"))
    except TypeError as error:
        if "PIL" not in str(error):
            raise
        raise Mistake(
            f"the transform failed on a PIL image ({error}): Normalize computes on tensors, so "
            "it comes after ToTensor(): Compose([Resize, ToTensor(), Normalize(mean, std)])"
        ) from None
    require(
        torch.is_tensor(result),
        f"build_transform gave a {type(result).__name__}, not a tensor: add transforms.ToTensor()",
    )
    require(
        tuple(result.shape) == (3, 8, 8),
        f"an 8x8 image at image_size 8 gave shape {tuple(result.shape)}, expected (3, 8, 8): "
        "transforms.Resize((image_size, image_size)), then ToTensor (channels first)",
    )
    wide = tuple(transform(Image.new("RGB", (12, 8))).shape)  # 12 wide, 8 high
    require(
        wide == (3, 8, 8),
        f"a 12x8 picture at image_size 8 gave shape {wide}, expected (3, 8, 8): Resize with one "
        "number scales the shorter side only and keeps the aspect ratio (then a batch of "
        "pictures of different shapes cannot be stacked); Resize((image_size, image_size))",
    )
    require(
        result.is_floating_point(),
        f"the tensor is {result.dtype}: ToTensor() gives float32 in [0, 1]",
    )
    scaled = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255

    def normalized(values, m, s):
        return (values - torch.tensor(m).view(3, 1, 1)) / torch.tensor(s).view(3, 1, 1)

    if torch.allclose(result, normalized(scaled, mean, std), atol=1e-4):
        return
    if torch.allclose(result, normalized(scaled * 255, mean, std), atol=1e-2):
        raise Mistake(
            "pixels were not scaled to [0, 1] before Normalize (values up to 255): use "
            "transforms.ToTensor(), which divides by 255"
        )
    if torch.allclose(result, scaled, atol=1e-4):
        raise Mistake("no normalization: add transforms.Normalize(mean, std) after ToTensor()")
    if torch.allclose(result, normalized(scaled, IMAGENET_MEAN, IMAGENET_STD), atol=1e-4):
        raise Mistake(
            "wrong normalization values: ImageNet's mean and std are hard-coded; use the mean and "
            "std passed in (measured on your training images by channel_mean_std)"
        )
    raise Mistake(
        "the values are not (pixel / 255 - mean) / std per channel: Resize, ToTensor(), "
        "Normalize(mean, std), in this order"
    )


def measures_mean_std(exercise) -> str:
    """channel_mean_std gives each channel's mean and std over all training pixels"""
    generator = torch.Generator().manual_seed(0)
    # Three images of different sizes; the channels differ (0.1, 0.4, 0.6 + noise), so that mixed
    # channels show, and the images differ in spread, so that per-image stds averaged show.
    base = torch.tensor([0.1, 0.4, 0.6]).view(3, 1, 1)
    images = [
        base + torch.rand(3, 4 + i, 5, generator=generator) * (0.2 + 0.1 * i) for i in range(3)
    ]
    mean, std = exercise.channel_mean_std(images)
    require(
        len(mean) == 3 and len(std) == 3,
        f"{len(mean)} means and {len(std)} stds: one value per channel (R, G, B)",
    )
    mean, std = torch.tensor([float(m) for m in mean]), torch.tensor([float(s) for s in std])
    pixels = torch.cat([image.reshape(3, -1) for image in images], dim=1)
    expected_mean = pixels.mean(dim=1)
    mixed = torch.cat([image.reshape(-1, 3) for image in images]).mean(dim=0)
    require(
        not torch.allclose(mean, mixed, atol=1e-4),
        f"means {shown(mean)} mix the channels: image.view(-1, 3) / reshape(-1, 3) reads a "
        "(3, H, W) tensor as if it were (H, W, 3); use image.reshape(3, -1) (channels first), "
        "or image.permute(1, 2, 0).reshape(-1, 3) (channel_mean_std)",
    )
    require(
        not torch.allclose(mean, pixels.mean().expand(3), atol=1e-4),
        f"means {shown(mean)}: one mean over all three channels together; each channel has its "
        "own: pixels of shape (3, N), then .mean(dim=1) (channel_mean_std)",
    )
    # The checker knows its images, so it knows the exact values of the usual mistakes: each
    # differs from the right value by 1e-2 or more here, far above float32 rounding (1e-6).
    per_image = torch.stack([image.reshape(3, -1).mean(dim=1) for image in images]).mean(dim=0)
    require(
        not torch.allclose(mean, per_image, atol=1e-4),
        f"means {shown(mean)}, expected {shown(expected_mean)}: an average of per-image means "
        "weighs a small image as much as a large one; average each channel over all pixels of "
        "all images together (torch.cat of image.reshape(3, -1), then .mean(dim=1))",
    )
    require(
        torch.allclose(mean, expected_mean, atol=1e-4),
        f"means {shown(mean)}, expected {shown(expected_mean)}: average each channel over every "
        "pixel of every image (images of different sizes weigh by their pixel count)",
    )
    # Both divisors are right: N (population std, sqrt(E[x^2] - E[x]^2)) and N - 1 (torch's
    # default, Bessel's correction). With 75 pixels a channel they differ by 0.7% (7e-4 here):
    # more than float32 rounding (1e-6) and the tolerance (2e-4), far less than the mistakes
    # (per-image stds averaged: 1e-2 and more).
    divisors = {"N": pixels.std(dim=1, correction=0), "N - 1": pixels.std(dim=1, correction=1)}
    for divisor, expected_std in divisors.items():
        if torch.allclose(std, expected_std, atol=2e-4):
            return f"your std divides by {divisor}; either divisor is right"
    for correction in (0, 1):
        require(
            not torch.allclose(std, pixels.var(dim=1, correction=correction), atol=2e-4),
            f"stds {shown(std)} are the variances (std squared), expected "
            f"{shown(divisors['N - 1'])}: take .std(dim=1), or the square root of the variance",
        )
        require(
            not torch.allclose(std, pixels.std(correction=correction).expand(3), atol=2e-4),
            f"stds {shown(std)}: one std over all three channels together, expected "
            f"{shown(divisors['N - 1'])}: each channel has its own, .std(dim=1) of the (3, N) "
            "pixels",
        )
    raise Mistake(
        f"stds {shown(std)}, expected {shown(divisors['N'])} (divisor N) or "
        f"{shown(divisors['N - 1'])} (divisor N - 1): the spread of each channel over all "
        "pixels together, not an average of per-image stds"
    )


def shown(values: torch.Tensor) -> list[float]:
    return [round(v, 4) for v in values.tolist()]


@contextlib.contextmanager
def machine(gpu: bool):
    """While active, torch answers as on a machine with a GPU (or without one): the loaders
    check then judges pin_memory the same on every machine. Only the questions are answered;
    nothing runs on a GPU (the loaders are built, never iterated)."""
    saved = torch.cuda.is_available, torch.cuda.device_count, torch.accelerator.is_available
    torch.cuda.is_available = lambda: gpu
    torch.cuda.device_count = lambda: int(gpu)
    torch.accelerator.is_available = lambda: gpu
    try:
        yield
    finally:
        torch.cuda.is_available, torch.cuda.device_count, torch.accelerator.is_available = saved


def loaders(exercise) -> None:
    """the training loader shuffles, validation does not; workers and pin_memory are used"""
    images = torch.rand(6, 3, 8, 8)
    dataset = torch.utils.data.TensorDataset(images, torch.arange(6) % 2)
    train, val = exercise.make_loaders(dataset, dataset, batch_size=4, num_workers=2)
    require(
        isinstance(train.sampler, RandomSampler),
        "the training loader does not shuffle: DataLoader(train_set, shuffle=True), or every "
        "epoch sees the batches in the same order (with sorted folders: one class at a time)",
    )
    require(
        isinstance(val.sampler, SequentialSampler),
        "the validation loader shuffles: shuffle=False keeps validation the same every epoch",
    )
    require(
        train.num_workers == 2 and val.num_workers == 2,
        f"num_workers is {train.num_workers} / {val.num_workers} for num_workers=2: pass "
        "num_workers=num_workers to DataLoader, so worker processes decode images in parallel",
    )
    for gpu in (True, False):  # both worlds, whatever this machine has
        with machine(gpu=gpu):
            pinned = [loader.pin_memory for loader in exercise.make_loaders(dataset, dataset, 4, 2)]
        require(
            pinned == [gpu, gpu],
            f"pin_memory is {pinned[0]} / {pinned[1]} on a machine {'with' if gpu else 'without'} "
            "a GPU: pin_memory=torch.cuda.is_available(); page-locked memory speeds up copies "
            "to a GPU and is wasted without one",
        )
    require(
        train.batch_size == 4 and val.batch_size == 4,
        f"batch_size is {train.batch_size} / {val.batch_size}, expected 4: pass batch_size on",
    )
    require(
        not val.drop_last,
        "the validation loader drops its last, smaller batch (drop_last=True): those images are "
        "never validated and the accuracy is over a subset; keep drop_last=False for validation",
    )


CHECKS = [
    finds_classes,
    handles_formats,
    converts_to_rgb,
    scales_and_normalizes,
    measures_mean_std,
    loaders,
]
