"""Latent samplers fitted after training, kept apart from the models (as Pythae does).

A VAE's aggregate posterior is not N(0, I): the prior puts mass in regions the decoder never saw. Two
samplers fitted to the encoded training set sample where the codes really are:

- ``gmm``: a full-covariance Gaussian mixture (``sampler_gmm.safetensors``);
- ``two-stage``: a second, small VAE on the codes (Dai & Wipf, ICLR 2019; ``sampler_two_stage.safetensors``).

Each is stored next to the weights (plain tensors, no pickle) so sampling is reproducible, fitted once on
first use and refitted when the run's weights change: the file's metadata holds a hash of the
``model.safetensors`` it was fitted for (a file without it, or for other weights, is refitted).

Conditional models (a CVAE) encode each training image with its own label; the samplers then model the
codes of all classes together, unconditionally, and the model decodes a drawn z with whatever label is asked
for. A CVAE's code is meant to hold the style, not the class, so one sampler serves every class.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load, save
from torch import nn

from .base import Generator
from .checkpoints import WEIGHTS, atomic_write_bytes, check_regular_file, file_sha256, read_regular_file, read_run_info
from .errors import UserError
from .vae import gaussian_kl

SAMPLERS = ("prior", "gmm", "two-stage")  # every sampler by name: the CLIs, evaluation and dashboard read this
GMM_FILE = "sampler_gmm.safetensors"
MAX_COMPONENTS = 1000
MAX_SAMPLER_BYTES = 512 * 1024**2
TWO_STAGE_FILE = "sampler_two_stage.safetensors"
METADATA_KEY = "sampler"
MAX_METADATA_BYTES = 64 * 1024  # the sampler's JSON metadata (kind, sizes, weights hash)
MAX_TWO_STAGE_HIDDEN = 4096  # a file's "hidden" and "depth" are bounded before any network is built from them
MAX_TWO_STAGE_DEPTH = 16
MAX_TWO_STAGE_PARAMETERS = 20_000_000  # counted on the meta device; the default sampler has about 0.3 million


def _invalid(path: Path, what: str, exc: BaseException) -> UserError:
    reason = str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return UserError(f"{path} is not a valid {what} sampler file: {reason}")


def _stored_metadata(data: bytes, path: Path, what: str) -> dict:
    """The JSON object under ``METADATA_KEY`` in the header of the safetensors bytes ``data`` (bounded)."""
    try:
        size = int.from_bytes(data[:8], "little")
        if len(data) < 8 or size > len(data) - 8:
            raise ValueError("the header is truncated")
        header = json.loads(data[8 : 8 + size])
        text = (header.get("__metadata__") or {})[METADATA_KEY]
        if not isinstance(text, str) or len(text) > MAX_METADATA_BYTES:
            raise ValueError(f"its metadata must be a JSON text of at most {MAX_METADATA_BYTES} bytes")
        meta = json.loads(text)
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not a JSON object")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, UnicodeDecodeError) as exc:
        raise _invalid(path, what, exc) from None
    return meta


def _bounded_int(meta: dict, key: str, low: int, high: int, path: Path) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(
            f"{path}: {key} must be a whole number from {low} to {high}, got {str(value)[:40]!r}; "
            "delete it to fit a new sampler"
        )
    return value


def _check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise UserError(f"{path}: {name} holds NaN, infinite or non-float values; delete it to fit a new sampler")


class GaussianMixtureSampler:
    """Full-covariance Gaussian mixture over latent codes, sampled with a torch.Generator."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor):
        self.weights, self.means = weights.double(), means.double()
        self.covariances = covariances.double()
        self.cholesky = torch.linalg.cholesky(self.covariances)

    @classmethod
    def fit(cls, codes: torch.Tensor, components: int = 10, seed: int = 0) -> GaussianMixtureSampler:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        codes = codes.detach().double().cpu()
        if len(codes) < 2 or not torch.isfinite(codes).all():
            raise UserError(
                f"the GMM sampler needs at least 2 finite codes (encoded training images), got {len(codes)}: "
                "train on more images or use --sampler prior"
            )
        if len(codes) < components:
            print(
                f"warning: only {len(codes)} training images: the GMM sampler is fitted with {len(codes)} "
                f"components instead of {components}",
                file=sys.stderr,
            )
            components = len(codes)
        gmm = GaussianMixture(components, covariance_type="full", random_state=seed, reg_covar=1e-5)
        with warnings.catch_warnings():  # a fit that stops at its iteration limit is still a usable mixture
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(codes.numpy())
        return cls(*(torch.from_numpy(a) for a in (gmm.weights_, gmm.means_, gmm.covariances_)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        z = self.means[component] + (self.cholesky[component] @ eps.unsqueeze(-1)).squeeze(-1)
        return z.float()

    def save(self, path: Path, model_hash: str | None = None) -> None:
        tensors = {"weights": self.weights, "means": self.means, "covariances": self.covariances}
        metadata = {METADATA_KEY: json.dumps({"kind": "gmm", "model_hash": model_hash})}
        atomic_write_bytes(Path(path), save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))

    @classmethod
    def load(cls, path: Path, latent_dim: int) -> GaussianMixtureSampler:
        """The sampler stored at ``path``, refused unless it is a regular file of a bounded size that holds a
        finite mixture of at most ``MAX_COMPONENTS`` components over ``latent_dim`` dimensions."""
        data = read_regular_file(Path(path), MAX_SAMPLER_BYTES)
        try:
            t = load(data)
            weights, means, covariances = t["weights"], t["means"], t["covariances"]
            k = len(weights)  # a 0-d tensor has no length
        except Exception as exc:
            raise UserError(f"{path} is not a valid GMM sampler file: {str(exc).splitlines()[0][:200]}") from None
        shapes = {"weights": (k,), "means": (k, latent_dim), "covariances": (k, latent_dim, latent_dim)}
        for name, tensor in (("weights", weights), ("means", means), ("covariances", covariances)):
            if tuple(tensor.shape) != shapes[name] or not tensor.is_floating_point():
                raise UserError(
                    f"{path} does not fit this model (latent size {latent_dim}): {name} has shape "
                    f"{tuple(tensor.shape)}, not {shapes[name]}; delete it to fit a new sampler"
                )
            if not torch.isfinite(tensor).all():
                raise UserError(f"{path}: {name} holds NaN or infinite values; delete it to fit a new sampler")
        if not 1 <= k <= MAX_COMPONENTS or (weights < 0).any() or weights.sum() <= 0:
            raise UserError(f"{path}: the mixture needs 1 to {MAX_COMPONENTS} components with weights >= 0")
        try:
            return cls(weights, means, covariances)
        except Exception as exc:  # a covariance that is not positive definite
            raise UserError(f"{path} is not a valid GMM sampler file: {str(exc).splitlines()[0][:200]}") from None


class ResidualMLP(nn.Module):
    """x -> linear(x) + MLP(x): the linear path alone already fits Gaussian codes exactly (Dai & Wipf's
    second stage also uses skip connections), the MLP bends it where the codes are not Gaussian."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int, depth: int):
        super().__init__()
        layers, width = [], dim_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(width, dim_out))
        self.skip = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return self.skip(x) + self.mlp(x)


class TwoStageSampler(nn.Module):
    """The second-stage VAE: codes z (standardised) -> u in R^d -> back, with a learned decoder variance gamma.

    Dai & Wipf show the learned gamma is what makes the second stage work: it shrinks towards 0 as the fit
    improves, so the decoder becomes a sharp map from N(0, I) onto the codes' distribution. Sampling draws
    u ~ N(0, I) and z ~ N(decoder(u), gamma I) — the second model's own marginal.
    """

    LOG_GAMMA_MIN = math.log(1e-4)  # gamma -> 0 is expected; the floor keeps the loss bounded

    def __init__(self, dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.dim, self.hidden, self.depth = dim, hidden, depth
        self.encoder = ResidualMLP(dim, 2 * dim, hidden, depth)
        self.decoder = ResidualMLP(dim, dim, hidden, depth)
        self.log_gamma = nn.Parameter(torch.zeros(()))
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def gamma(self) -> torch.Tensor:
        return self.log_gamma.clamp(min=self.LOG_GAMMA_MIN).exp()

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """Negative ELBO of standardised codes, nats per code (sums over dimensions, mean over the batch)."""
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        u = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        gamma = self.gamma()
        recon = 0.5 * (z - self.decoder(u)).square().sum(1) / gamma + 0.5 * self.dim * torch.log(2 * math.pi * gamma)
        return (recon + gaussian_kl(mu, logvar).sum(1)).mean()

    @classmethod
    def fit(
        cls, codes: torch.Tensor, steps: int = 8000, batch_size: int = 256, lr: float = 2e-3, seed: int = 0, **sizes
    ) -> TwoStageSampler:
        """Adam with a cosine decay on minibatches of the codes; seeded, and the global RNG is left untouched.

        The long schedule matters: on vae-mnist5k's codes (n = 2 000 check) 3 000 steps at lr 1e-3 left gamma at
        0.42 and cut the prior's FID by only 16 %; 8 000 steps at 2e-3 (about 45 CPU seconds) reach gamma 0.06 and
        cut it by 41 %."""
        # The caller may sit in torch.inference_mode() or no_grad() (the dashboard's cached sampling does): the fit
        # trains, so it turns both off and clones the codes out of inference mode (inference tensors cannot be
        # saved for backward).
        with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
            codes = codes.detach().float().cpu().clone()
            if len(codes) < 2 or not torch.isfinite(codes).all():
                raise UserError(
                    f"the two-stage sampler needs at least 2 finite codes (encoded training images), got "
                    f"{len(codes)}: train on more images or use --sampler prior"
                )
            torch.manual_seed(seed)
            sampler = cls(codes.shape[1], **sizes)
            with torch.no_grad():
                sampler.shift.copy_(codes.mean(0))
                sampler.scale.copy_(codes.std(0).clamp_min(1e-6))
            data = (codes - sampler.shift) / sampler.scale
            optimizer = torch.optim.Adam(sampler.parameters(), lr=lr)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
            for _ in range(steps):
                loss = sampler.loss(data[torch.randint(len(data), (min(batch_size, len(data)),))])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        if not all(torch.isfinite(t).all() for t in sampler.state_dict().values()):
            raise UserError("the two-stage sampler's fit diverged (NaN weights); use --sampler gmm or prior")
        return sampler.eval()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.randn(n, self.dim, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        return (self.decoder(u) + self.gamma().sqrt() * eps) * self.scale + self.shift

    def save(self, path: Path, model_hash: str | None = None) -> None:
        meta = {"kind": "two-stage", "dim": self.dim, "hidden": self.hidden, "depth": self.depth}
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        metadata = {METADATA_KEY: json.dumps({**meta, "model_hash": model_hash})}
        atomic_write_bytes(Path(path), save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: Path, latent_dim: int) -> TwoStageSampler:
        """The sampler stored at ``path``, refused unless it is a regular file of a bounded size whose sizes are in
        range and fit a latent of ``latent_dim`` dimensions, and whose every tensor has the shape those sizes give
        and finite values (a positive scale): checked before any network is built, on the meta device."""
        path = Path(path)
        data = read_regular_file(path, MAX_SAMPLER_BYTES)
        meta = _stored_metadata(data, path, "two-stage")
        dim = _bounded_int(meta, "dim", 1, 1_000_000, path)
        if dim != latent_dim:
            raise UserError(
                f"{path} does not fit this model (latent size {latent_dim}, not {dim}); delete it to fit a new sampler"
            )
        hidden = _bounded_int(meta, "hidden", 1, MAX_TWO_STAGE_HIDDEN, path)
        depth = _bounded_int(meta, "depth", 0, MAX_TWO_STAGE_DEPTH, path)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in cls(dim, hidden, depth).state_dict().items()}
        if sum(math.prod(shape) for shape in expected.values()) > MAX_TWO_STAGE_PARAMETERS:
            raise UserError(f"{path}: a sampler of width {hidden} and depth {depth} is too large; delete it")
        try:
            tensors = load(data)
        except Exception as exc:
            raise _invalid(path, "two-stage", exc) from None
        got = {k: tuple(v.shape) for k, v in tensors.items()}
        if got != expected:
            wrong = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
            raise UserError(f"{path} does not fit its own sizes (e.g. {wrong[0]!r}); delete it to fit a new sampler")
        _check_finite(path, tensors)
        if (tensors["scale"] <= 0).any():
            raise UserError(f"{path}: scale must be positive; delete it to fit a new sampler")
        sampler = cls(dim, hidden, depth)
        sampler.load_state_dict(tensors)
        return sampler.eval()


FITTED_SAMPLERS = {"gmm": (GaussianMixtureSampler, GMM_FILE), "two-stage": (TwoStageSampler, TWO_STAGE_FILE)}


def weights_hash(run_dir: Path) -> str | None:
    """SHA-256 (first 16 hex digits) of the run's ``model.safetensors``; None when there is no regular file."""
    digest = file_sha256(Path(run_dir) / WEIGHTS)
    return digest[:16] if digest else None


def stored_model_hash(path: Path) -> str | None:
    """The weights hash a sampler file was fitted for, or None (no such file, a file from before the hash
    existed, or an unreadable one: each is refitted)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {})[METADATA_KEY]).get("model_hash")
    except Exception:
        return None


@torch.inference_mode()
def encode_all(
    model: Generator, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """Codes of many images, in batches; a conditional encoder gets each image's own label."""
    codes = []
    for i in range(0, len(images), batch_size):
        part = images[i : i + batch_size].to(model.device)
        extra = model.label_kwargs(labels[i : i + batch_size].to(model.device)) if labels is not None else {}
        codes.append(model.encode(part, **extra).cpu())
    return torch.cat(codes)


def training_codes(model: Generator, run_dir: Path, train_images=None) -> torch.Tensor:
    """The encoded train split the samplers are fitted on.

    ``train_images``: the images (a tensor), a split with ``labels`` (``generators.data.ImageSplit``), a function
    returning either (called only here), or None: the run's own train split, read from ``run_dir``. A
    conditional encoder needs each image's label, so for it bare images are not enough and the run's own split
    is used."""
    if callable(train_images):
        train_images = train_images()
    if isinstance(train_images, torch.Tensor) and not model.capabilities.conditional:
        return encode_all(model, train_images)
    split = train_images if hasattr(train_images, "labels") else None
    if split is None:
        from .data import load_run_dataset

        split = load_run_dataset(read_run_info(run_dir)).train
    labels = split.labels if model.capabilities.conditional else None
    if model.capabilities.conditional and labels is None:
        raise UserError("a class-conditional encoder needs the class labels of the images its sampler is fitted on")
    return encode_all(model, split.float_images(), labels)


def fitted_sampler(model: Generator, kind: str, run_dir: Path, train_images=None):
    """The run's stored sampler of ``kind`` (``gmm`` or ``two-stage``), fitted on the encoded train split and
    stored the first time, and again whenever the run's weights are not those it was fitted for."""
    cls, name = FITTED_SAMPLERS[kind]
    path, current = Path(run_dir) / name, weights_hash(run_dir)
    if path.exists() or path.is_symlink():  # a FIFO, a folder or a link to a device is refused, never replaced
        check_regular_file(path, MAX_SAMPLER_BYTES)
    if path.is_file() and stored_model_hash(path) == current:  # a file that claims these weights is validated
        return cls.load(path, model.config.latent_dim)
    if not model.capabilities.encoder:
        raise UserError(f"--sampler {kind} needs a model with an encoder; {model.name} has none (use --sampler prior)")
    codes = training_codes(model, run_dir, train_images)
    if sys.stderr.isatty():  # minutes of fitting are not silent on a terminal (piped stderr keeps only errors)
        print(f"fitting the {kind} sampler of {Path(run_dir).name} on {len(codes)} codes…", file=sys.stderr)
    sampler = cls.fit(codes)
    sampler.save(path, current)
    return sampler


def gmm_sampler(model: Generator, run_dir: Path, train_images=None) -> GaussianMixtureSampler:
    """The run's GMM sampler (see ``fitted_sampler``)."""
    return fitted_sampler(model, "gmm", run_dir, train_images)


def needs_encoder(kind: str) -> bool:
    """Whether the sampler ``kind`` is fitted on encoded training images (so only works with an encoder)."""
    return kind != "prior"


def latent_sampler(model: Generator, kind: str, run_dir: Path, train_images=None):
    """A function (n, generator) -> z for the chosen sampler. ``train_images``: see ``training_codes`` (None:
    the run's own train split, loaded only if a sampler has to be fitted)."""
    if kind == "prior":
        return model.prior
    if kind in FITTED_SAMPLERS:
        sampler = fitted_sampler(model, kind, run_dir, train_images)

        def draw(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
            z = sampler.sample(n, generator)
            if not torch.isfinite(z).all():  # never decode (and save) black images from a broken sampler
                raise UserError(f"the {kind} sampler of {run_dir} drew NaN or infinite codes; delete its file to refit")
            return z.to(model.device)

        return draw
    raise UserError(f"unknown sampler {kind!r}: choose one of {', '.join(SAMPLERS)}")
