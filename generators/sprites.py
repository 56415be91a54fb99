"""``sprites``: a dSprites-like data set the lab renders itself, with every image's generative factors known.

One white shape on black (Matthey et al. 2017): shape (square, ellipse, heart), scale (6 values in [0.5, 1]),
orientation (40 values in [0, 2π], both ends included as in dSprites), x and y position (32 values each in
[0, 1]): 3 × 6 × 40 × 32 × 32 = 737 280 combinations. ``sprites-color`` adds a colour factor (6 hues) and three
channels. Images are drawn from signed distances (antialiased over one pixel), vectorised with torch, at any size
(32 by default, 64 as dSprites), so any factor combination can be rendered on demand (the disentanglement metrics
render batches with one factor held fixed).

Geometry (the factor grid is dSprites'; the drawing is the lab's): in image units ([0, 1] across), a sprite's
centre is ``0.23 + 0.54 · position``; at scale 1 the square's side is 0.3, the ellipse's axes 0.4 × 0.2, the heart
0.32 high; orientation turns the shape clockwise about its centre.

``dsprites:PATH`` reads DeepMind's ``dsprites_ndarray_*.npz`` instead: only its ``imgs`` and ``latents_classes``
arrays, with ``allow_pickle=False`` (its pickled ``metadata`` is never read); the images are streamed from the
zip, so only the drawn subset is ever held in memory.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

SPRITES_SEED = 20251205  # fixed forever: the subset of combinations in the train and test splits
TRAIN_SIZE, TEST_SIZE = 20_000, 2_000
DEFAULT_SIZE = 32
SHAPES = ("square", "ellipse", "heart")
HUES = ("red", "yellow", "green", "cyan", "blue", "magenta")  # hue 0°, 60°, …, 300°, full saturation
HUE_RGB = ((1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1))
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
DSPRITES_NAMES = ("color", "shape", "scale", "orientation", "x", "y")  # the columns of dSprites' latents_classes
ORDERED_FACTORS = ("scale", "x", "y")
CENTRE_LOW, CENTRE_SPAN = 0.23, 0.54  # every shape stays inside the image at any scale and turn
SQUARE_HALF, ELLIPSE_AXES, HEART_SIZE = 0.15, (0.2, 0.1), 0.29
RENDER_PIXELS = 512 * 32 * 32  # pixels per vectorised pass (512 images at 32x32): small enough for the CPU's cache
DSPRITES_READ_ROWS = 4096


@dataclass(frozen=True)
class Factors:
    """The generative factors of a data set: names, number of values and the values themselves (in factor
    order), and, where the set is generated, ``render`` (factor indices (N, K) int -> uint8 images (N, C, H, W))."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    values: tuple[tuple[float, ...], ...] = ()
    render: Callable[[np.ndarray], torch.Tensor] | None = field(default=None, compare=False, repr=False)
    # per factor: do its values lie on a line (scale, position), so that a change is a distance? (shape and colour
    # are categories, orientation a circle)
    ordered: tuple[bool, ...] = ()

    @property
    def combinations(self) -> int:
        return math.prod(self.sizes)


def factor_values(color: bool = False) -> tuple[tuple[float, ...], ...]:
    values = (
        tuple(float(i) for i in range(3)),
        tuple(np.linspace(0.5, 1.0, 6).tolist()),
        tuple(np.linspace(0.0, 2 * math.pi, 40).tolist()),
        tuple(np.linspace(0.0, 1.0, 32).tolist()),
        tuple(np.linspace(0.0, 1.0, 32).tolist()),
    )
    return (tuple(float(i) for i in range(len(HUES))), *values) if color else values


def sprite_factors(color: bool = False, image_size: int = DEFAULT_SIZE) -> Factors:
    names = ("color", *FACTOR_NAMES) if color else FACTOR_NAMES
    sizes = (len(HUES), *FACTOR_SIZES) if color else FACTOR_SIZES
    ordered = tuple(name in ORDERED_FACTORS for name in names)
    return Factors(names, sizes, factor_values(color), lambda f: render(f, image_size, color=color), ordered)


def _signed_distance(shape: int, qx: np.ndarray, qy: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Signed distance (image units, negative inside) of ``shape`` at ``scale`` to points ``(qx, qy)`` given in
    the sprite's own frame (centred, unrotated)."""
    if shape == 0:  # square
        half = SQUARE_HALF * scale
        dx, dy = np.abs(qx) - half, np.abs(qy) - half
        outside = np.sqrt(np.maximum(dx, 0) ** 2 + np.maximum(dy, 0) ** 2)
        return outside + np.minimum(np.maximum(dx, dy), 0)
    if shape == 1:  # ellipse: Quilez's first-order distance, exact on the boundary
        a, b = ELLIPSE_AXES[0] * scale, ELLIPSE_AXES[1] * scale
        k0 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2)
        k1 = np.maximum(np.sqrt((qx / a**2) ** 2 + (qy / b**2) ** 2), 1e-12)
        return k0 * (k0 - 1) / k1
    # heart (Quilez's exact distance): its tip at the bottom, 1.1 units high in its own frame
    size = HEART_SIZE * scale
    hx, hy = np.abs(qx) / size, 0.55 - qy / size
    lobe = np.sqrt((hx - 0.25) ** 2 + (hy - 0.75) ** 2) - math.sqrt(2) / 4
    m = 0.5 * np.maximum(hx + hy, 0)
    body = np.sqrt(np.minimum(hx**2 + (hy - 1) ** 2, (hx - m) ** 2 + (hy - m) ** 2)) * np.sign(hx - hy)
    return np.where(hx + hy > 1, lobe, body) * size


def _render_chunk(f: np.ndarray, size: int, color: bool) -> np.ndarray:
    """numpy, not torch: one thread per call, which stays fast when the machine's cores are busy (torch's
    elementwise threads slow this ~10x under load)."""
    if color:
        hue, f = f[:, 0], f[:, 1:]
    column = lambda v: v.astype(np.float32).reshape(-1, 1, 1)  # noqa: E731
    shape = f[:, 0]
    scale = column(0.5 + 0.1 * f[:, 1])
    angle = column(f[:, 2] * (2 * math.pi / 39))
    cx, cy = column(CENTRE_LOW + CENTRE_SPAN * f[:, 3] / 31), column(CENTRE_LOW + CENTRE_SPAN * f[:, 4] / 31)
    grid = ((np.arange(size, dtype=np.float32) + 0.5) / size).astype(np.float32)
    px, py = grid.reshape(1, 1, -1) - cx, grid.reshape(1, -1, 1) - cy  # (n, 1, S) and (n, S, 1)
    cos, sin = np.cos(angle), np.sin(angle)
    qx, qy = cos * px + sin * py, cos * py - sin * px  # the inverse of a clockwise turn (y points down)
    coverage = np.empty((len(f), size, size), np.float32)
    for s in range(len(SHAPES)):
        pick = np.flatnonzero(shape == s)
        if len(pick):
            distance = _signed_distance(s, qx[pick], qy[pick], scale[pick])
            coverage[pick] = np.clip(0.5 - distance * size, 0, 1)  # antialiased: a one-pixel ramp at the edge
    grey = np.rint(coverage * 255).astype(np.uint8)[:, None]
    return grey * np.asarray(HUE_RGB, np.uint8)[hue].reshape(-1, 3, 1, 1) if color else grey  # hues are 0/1 per channel


def render(factors, image_size: int = DEFAULT_SIZE, *, color: bool = False) -> torch.Tensor:
    """uint8 images (N, C, S, S) of the factor index combinations ``factors`` (N, K): K = 5 (shape, scale,
    orientation, x, y), or 6 with the colour first when ``color`` (then C = 3)."""
    f = np.asarray(factors.cpu() if isinstance(factors, torch.Tensor) else factors, dtype=np.int64)
    f = f.reshape(-1, 6 if color else 5)
    sizes = np.asarray(((len(HUES),) if color else ()) + FACTOR_SIZES)
    if len(f) and ((f < 0) | (f >= sizes)).any():
        raise ValueError(f"factor indices out of range (sizes {tuple(sizes.tolist())})")
    out = np.empty((len(f), 3 if color else 1, image_size, image_size), np.uint8)
    chunk = max(1, RENDER_PIXELS // (image_size * image_size))
    for i in range(0, len(f), chunk):
        out[i : i + chunk] = _render_chunk(f[i : i + chunk], image_size, color)
    return torch.from_numpy(out)


def draw_combinations(sizes, count: int, seed: int = SPRITES_SEED) -> np.ndarray:
    """``count`` distinct factor combinations (count, K), a fixed seeded draw from the whole grid."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(math.prod(sizes), size=count, replace=False)
    return np.stack(np.unravel_index(flat, tuple(sizes)), 1).astype(np.int64)


Split = tuple[torch.Tensor, torch.Tensor]  # (uint8 images (N, C, H, W), int64 factor indices (N, K))


def sprites_splits(
    color: bool = False, image_size: int = DEFAULT_SIZE, train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE
) -> tuple[Split, Split, Factors]:
    """(train images, train factors), (test images, test factors) and the factor description: a fixed seeded
    draw of distinct combinations, the first ``train_size`` to train, the next ``test_size`` to test."""
    spec = sprite_factors(color, image_size)
    combos = torch.from_numpy(draw_combinations(spec.sizes, train_size + test_size))
    images = render(combos, image_size, color=color)
    return (images[:train_size], combos[:train_size]), (images[train_size:], combos[train_size:]), spec


# --- DeepMind's dSprites file ----------------------------------------------------------------------------------


def _npz_error(path: Path, why: str) -> UserError:
    return UserError(
        f"dsprites:{path} is not a readable dSprites .npz ({why}); give the path of dsprites_ndarray_*.npz"
    )


def _read_rows(npz, path: Path, member: str, wanted: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Rows ``wanted`` (sorted, distinct) of the array in ``member``, streamed: never the whole array in memory."""
    fmt = np.lib.format
    with npz.zip.open(member) as fh:
        version = fmt.read_magic(fh)
        shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fh)
        if fortran or dtype.hasobject or len(shape) != 3:
            raise _npz_error(path, f"{member} is not a C-ordered (N, H, W) array of numbers")
        row = math.prod(shape[1:]) * dtype.itemsize
        out = np.empty((len(wanted), *shape[1:]), dtype)
        done, start = 0, 0
        while done < len(wanted):
            count = min(DSPRITES_READ_ROWS, shape[0] - start)
            block = fh.read(count * row)
            if len(block) != count * row:
                raise _npz_error(path, f"{member} is shorter than its header says")
            block = np.frombuffer(block, dtype).reshape(count, *shape[1:])
            take = wanted[(wanted >= start) & (wanted < start + count)]
            out[done : done + len(take)] = block[take - start]
            done, start = done + len(take), start + count
    return out, shape


def dsprites_splits(path_text: str, train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE):
    """Like ``sprites_splits`` for DeepMind's file (64×64, 0/1 pixels): a seeded subset of its images with their
    factor classes; constant factors (dSprites' single colour) are dropped. No ``render``."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UserError(f"dsprites:{path} does not exist or is not a file; give the path of dsprites_ndarray_*.npz")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # not a zip, a torn file, a pickle (refused)…
        raise _npz_error(path, type(exc).__name__) from None
    with npz:
        if not isinstance(npz, np.lib.npyio.NpzFile) or not {"imgs", "latents_classes"} <= set(npz.files):
            raise _npz_error(path, "it needs the arrays imgs and latents_classes")
        try:
            classes = np.asarray(npz["latents_classes"])
            if classes.ndim != 2 or classes.dtype.kind not in "iu" or len(classes) < 2 or classes.min() < 0:
                raise _npz_error(path, "latents_classes is not an (N, K) array of non-negative integers")
            count = min(len(classes), train_size + test_size)
            chosen = np.random.default_rng(SPRITES_SEED).choice(len(classes), size=count, replace=False)
            order = np.argsort(chosen)
            rows, shape = _read_rows(npz, path, "imgs.npy", chosen[order])
            if shape[0] != len(classes):
                raise _npz_error(path, f"imgs holds {shape[0]} images but latents_classes {len(classes)} rows")
            images = np.empty_like(rows)
            images[order] = rows
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise _npz_error(path, f"{type(exc).__name__}: {exc}"[:200]) from None
    if images.dtype != np.uint8:
        raise _npz_error(path, f"imgs has dtype {images.dtype}, not uint8")
    if images.max(initial=0) <= 1:  # dSprites stores 0/1 pixels
        images = images * np.uint8(255)
    picked = classes[chosen]
    sizes = classes.max(0) + 1
    keep = [k for k in range(classes.shape[1]) if sizes[k] > 1]
    known = classes.shape[1] == len(DSPRITES_NAMES)
    names = tuple(DSPRITES_NAMES[k] if known else f"factor{k}" for k in keep)
    spec = Factors(names, tuple(int(sizes[k]) for k in keep), ordered=tuple(n in ORDERED_FACTORS for n in names))
    factors = torch.from_numpy(picked[:, keep].astype(np.int64))
    images = torch.from_numpy(np.ascontiguousarray(images[:, None]))
    n_train = (
        train_size if count == train_size + test_size else max(1, round(count * train_size / (train_size + test_size)))
    )
    return (images[:n_train], factors[:n_train]), (images[n_train:], factors[n_train:]), spec
