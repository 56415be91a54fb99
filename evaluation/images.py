"""Image tensors -> grids, PNG and GIF bytes. Grids come from torchvision's ``make_grid``."""

from __future__ import annotations

import io

import torch
from PIL import Image
from torchvision.utils import make_grid

GRID_PADDING = 2


def to_pil(images: torch.Tensor, nrow: int, scale: int = 1) -> Image.Image:
    """A grid of images in [0, 1] (N, C, H, W) as one RGB/greyscale picture, enlarged ``scale`` times."""
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=GRID_PADDING, pad_value=1.0)
    array = grid.mul(255).round().to(torch.uint8)
    if images.shape[1] == 1:
        picture = Image.fromarray(array[0].numpy(), mode="L")
    else:
        picture = Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return picture


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def gif_bytes(frames: list[Image.Image], frame_ms: int = 120) -> bytes:
    """An endlessly looping animation that plays the frames forwards then backwards."""
    sequence = frames + frames[-2:0:-1]
    buffer = io.BytesIO()
    sequence[0].save(buffer, format="GIF", save_all=True, append_images=sequence[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()
