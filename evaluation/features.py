"""The domain feature extractor: a small CNN classifier trained on the dataset's train split.

Inception-v3 weights cannot be downloaded offline and Inception on 28x28 digits is a poor fit anyway, so
FID/KID/PRDC are measured in the penultimate layer of a classifier that knows the domain. It is trained once
per (dataset, image shape), cached as safetensors under ``checkpoints/_extractors/<dataset>/`` with its test
accuracy, and named by a hash of its weights, so every score can say exactly which extractor made it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from generators.checkpoints import atomic_write_bytes
from generators.errors import UserError

DEFAULT_CACHE_DIR = "checkpoints/_extractors"
FEATURE_DIM = 128
MAX_INPUT_SIZE = 32  # larger images are downsized first: the classifier only needs the coarse shape
BATCH_SIZE = 1000
DEFAULT_EPOCHS = 20
FORMAT_VERSION = 2  # bump when the network changes: older cache files are then retrained
DEFAULT_WIDTH = 48
# a generated data set with known factors (sprites: 20 000 images) trains for at most this many image passes (10
# epochs, about two CPU minutes): sprites' shape, scale and x/y are then read back from 99-100 % of the test images
# (90 000 passes: shape 0.95, position 0.97 within one step); its test accuracy is recorded
FACTOR_SET_IMAGE_PASSES = 200_000
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def _out_size(size: int) -> int:
    """Spatial size after two stride-2 convolutions (28 -> 7, 32 -> 8, 16 -> 4)."""
    for _ in range(2):
        size = (size + 1) // 2
    return size


class ClassifierExtractor(nn.Module):
    """images in [0, 1] (N, C, H, W) -> penultimate features (N, 128); ``classify`` uses the last layer.

    Two strided 5x5 convolutions and one hidden layer: about 0.1 ms per image on a CPU core, so
    features for 10 000 images cost well under a second, and training takes seconds, not minutes.
    On a data set with known generative factors, a second head classifies every factor (``factor_sizes``):
    features that only had to tell the shape would not see a square's corners, its size or where it is, so
    FID in them could not tell a rounded blob in the wrong place from a sprite.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], num_classes: int, width: int = 32, factor_sizes: tuple[int, ...] = ()
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.num_classes, self.width, self.factor_sizes = num_classes, width, tuple(factor_sizes)
        self.num_features = FEATURE_DIM  # torchmetrics reads this instead of probing with a dummy image
        self.id = "untrained"
        self.test_accuracy: float | None = None
        side = _out_size(min(image_shape[1], MAX_INPUT_SIZE))
        self.body = nn.Sequential(
            nn.Conv2d(image_shape[0], width, 5, 2, 2),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 5, 2, 2),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(True),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, FEATURE_DIM),
            nn.ReLU(True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))
        if self.factor_sizes:
            self.factor_head = nn.Linear(FEATURE_DIM, sum(self.factor_sizes))  # every factor's logits, side by side
        # features are divided by their RMS on the train split, so distances and KID have a readable scale
        self.register_buffer("feature_scale", torch.ones(()))

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(next(self.parameters()).device, torch.float32)
        if images.shape[-1] > MAX_INPUT_SIZE:
            images = F.interpolate(images, size=(MAX_INPUT_SIZE, MAX_INPUT_SIZE), mode="bilinear", antialias=True)
        return images * 2 - 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self._prepare(images)) / self.feature_scale

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self._prepare(images)))

    def factor_logits(self, images: torch.Tensor) -> list[torch.Tensor]:
        """One (N, size) logit tensor per known factor."""
        return list(self.factor_head(self.body(self._prepare(images))).split(self.factor_sizes, 1))

    @torch.inference_mode()
    def predict_factors(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K) predicted value index of every factor."""
        return torch.stack([logits.argmax(1) for logits in self.factor_logits(images)], 1)

    @torch.inference_mode()
    def features_and_logits(
        self, images: torch.Tensor, batch_size: int = BATCH_SIZE
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and class logits of many images in one batched pass (on the CPU)."""
        feats, logits = [], []
        for start in range(0, len(images), batch_size):
            hidden = self.body(self._prepare(images[start : start + batch_size]))
            feats.append((hidden / self.feature_scale).cpu())
            logits.append(self.head(hidden).cpu())
        return torch.cat(feats), torch.cat(logits)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[1].argmax(1)


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random rotations (±10°), scalings (±10 %) and shifts (±2 px of 28) per image: 4 500 digits
    are too few for 97 % without them."""
    n, _, h, _ = images.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * 2 / h)  # grid units: 2 px
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def train_classifier(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    num_classes: int,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 128,
    seed: int = 0,
    width: int = DEFAULT_WIDTH,
    train_factors: torch.Tensor | None = None,
    factor_sizes: tuple[int, ...] = (),
    progress: Callable[[float, str], None] | None = None,
) -> ClassifierExtractor:
    """Adam + one-cycle schedule + label smoothing: a fixed recipe that never looks at the test split (its
    accuracy is measured afterwards). Images are augmented by small random affine maps, unless their
    generative factors (``train_factors``, value indices (N, K) of ``factor_sizes``) are learned too: moving or
    turning an image would falsify its position and orientation, and a generated set is large enough anyway."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ClassifierExtractor(tuple(train_images.shape[1:]), num_classes, width, factor_sizes)
    steps_per_epoch = math.ceil(len(train_images) / batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train_images), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = train_images[idx].float() / 255
            if model.factor_sizes:
                hidden = model.body(model._prepare(x))
                loss = F.cross_entropy(model.head(hidden), train_labels[idx], label_smoothing=0.1)
                for k, logits in enumerate(model.factor_head(hidden).split(model.factor_sizes, 1)):
                    loss = loss + F.cross_entropy(logits, train_factors[idx, k], label_smoothing=0.1)
            else:
                x = random_affine(x, generator)
                loss = F.cross_entropy(model.logits(x), train_labels[idx], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if progress:
            progress((epoch + 1) / epochs, f"training the feature extractor: epoch {epoch + 1}/{epochs}")
    model.eval()
    hidden, _ = model.features_and_logits(train_images.float() / 255)
    model.feature_scale.fill_(hidden.square().mean().sqrt().clamp_min(1e-8).item())
    return model


def accuracy(model: ClassifierExtractor, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (model.classify(images.float() / 255) == labels).float().mean().item()


def _weights_hash(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _safe_name(dataset_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_name).strip("_") or "dataset"


def extractor_path(
    cache_dir: str | Path, dataset_name: str, image_shape, epochs: int = DEFAULT_EPOCHS, width: int = DEFAULT_WIDTH
) -> Path:
    """``<cache>/<dataset>/classifier-1x28x28.safetensors``; a non-default recipe (tests) gets its own file."""
    shape = "x".join(str(v) for v in image_shape)
    recipe = "" if (epochs, width) == (DEFAULT_EPOCHS, DEFAULT_WIDTH) else f"-e{epochs}w{width}"
    return Path(cache_dir) / _safe_name(dataset_name) / f"classifier-{shape}{recipe}.safetensors"


def save_extractor(model: ClassifierExtractor, path: Path, dataset_name: str, seconds: float) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT_VERSION,
        "id": model.id,
        "test_accuracy": model.test_accuracy,
        "num_classes": model.num_classes,
        "image_shape": list(model.image_shape),
        "width": model.width,
        "factor_sizes": list(model.factor_sizes),
        "dataset": dataset_name,
        "train_seconds": round(seconds, 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(tensors, metadata={"extractor": json.dumps(metadata)}))


def load_extractor(path: Path, factor_sizes: tuple[int, ...] = ()) -> ClassifierExtractor | None:
    """The cached extractor, or None when the file is torn, foreign, from an older format or has other factor
    heads than ``factor_sizes`` (then retrain)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["extractor"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        if meta.get("format") != FORMAT_VERSION or tuple(meta.get("factor_sizes", ())) != tuple(factor_sizes):
            return None
        shape, classes, width = tuple(meta["image_shape"]), int(meta["num_classes"]), int(meta["width"])
        model = ClassifierExtractor(shape, classes, width, tuple(factor_sizes))
        model.load_state_dict(tensors)
    except Exception:  # a cache, not a user's file: anything unreadable is simply rebuilt
        return None
    model.id, model.test_accuracy = meta["id"], meta["test_accuracy"]
    return model.eval()


def require_labels(data) -> None:
    """The classifier extractor learns from class labels; a dataset without them gets a clear error."""
    if data.train.labels is None or not data.num_classes or data.num_classes < 2:
        raise UserError(
            f"dataset {data.name} has no class labels (put the images in one sub-folder per class), "
            f"so the feature extractor cannot be trained; use --extractor inception instead"
        )


def get_extractor(
    dataset_name: str,
    image_shape,
    *,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    data=None,
    progress: Callable[[float, str], None] | None = None,
    epochs: int = DEFAULT_EPOCHS,
    width: int = DEFAULT_WIDTH,
) -> ClassifierExtractor:
    """The cached classifier for this dataset and image shape, trained (and cached) on first use.

    ``data`` is the loaded ``ImageData`` (loaded here when None). ``epochs``/``width`` exist so tests can
    train a tiny extractor quickly. An unreadable or outdated cache file is rebuilt.
    """
    from generators.data import has_known_factors, load_dataset

    image_shape = tuple(int(v) for v in image_shape)
    path = extractor_path(cache_dir, dataset_name, image_shape, epochs, width)
    if data is None and has_known_factors(dataset_name):  # the cached file must have heads for its factors
        data = load_dataset(dataset_name, image_size=image_shape[1], channels=image_shape[0])
    factors = getattr(data, "factors", None)
    factor_sizes = tuple(factors.sizes) if factors is not None else ()
    cached = load_extractor(path, factor_sizes) if path.is_file() else None
    if cached is not None:
        return cached
    if data is None:
        data = load_dataset(dataset_name, image_size=image_shape[1], channels=image_shape[0])
    require_labels(data)
    if tuple(data.image_shape) != image_shape:
        raise UserError(f"dataset {dataset_name} has images of shape {data.image_shape}, not {image_shape}")
    if factor_sizes:
        epochs = min(epochs, max(1, FACTOR_SET_IMAGE_PASSES // len(data.train)))
    started = time.perf_counter()
    model = train_classifier(
        data.train.images,
        data.train.labels,
        data.num_classes,
        epochs=epochs,
        width=width,
        train_factors=data.train.factors if factor_sizes else None,
        factor_sizes=factor_sizes,
        progress=progress,
    )
    model.test_accuracy = round(accuracy(model, data.test.images, data.test.labels), 4)
    tensors = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    model.id = f"cnn-{_safe_name(dataset_name)}-{_weights_hash(tensors)}"
    save_extractor(model, path, dataset_name, time.perf_counter() - started)
    return model


@lru_cache(maxsize=1)
def inception_extractor() -> InceptionExtractor:
    """One Inception per process: checking that it loads and using it must not load the weights twice."""
    return InceptionExtractor().eval()


class InceptionExtractor(nn.Module):
    """torchmetrics' FID Inception-v3 (pool3, 2 048 features) for users who are online; it knows no classes
    of the dataset, so mode counts are not available with it."""

    id = "inception-v3-compat"
    test_accuracy = None
    num_classes = None
    num_features = 2048

    def __init__(self):
        super().__init__()
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3

            # torch.hub writes 'Downloading: ...' to stderr first; offline, the error below is all a user should see
            with contextlib.redirect_stderr(io.StringIO()):
                self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
        except ModuleNotFoundError:
            raise UserError(
                "--extractor inception needs the torch-fidelity package: pip install torch-fidelity "
                "(or use the default --extractor classifier)"
            ) from None
        except Exception as exc:  # offline: URLError, OSError, RuntimeError from the weight download
            weights = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
            raise UserError(
                f"could not get the Inception-v3 weights ({type(exc).__name__}; offline?): to use them "
                f"offline put {INCEPTION_WEIGHTS} at {weights}, or use --extractor classifier"
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return self.net(images.clamp(0, 1).mul(255).round().to(torch.uint8))

    @torch.inference_mode()
    def features_and_logits(self, images: torch.Tensor, batch_size: int = 100) -> tuple[torch.Tensor, None]:
        return torch.cat([self(part) for part in images.split(batch_size)]), None

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        raise UserError("the Inception extractor does not know this dataset's classes: use --extractor classifier")
