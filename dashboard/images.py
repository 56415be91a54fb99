"""Image tensors -> grids, PNG and GIF bytes: ``evaluation.images`` (the report uses the same ones)."""

from evaluation.images import gif_bytes, png_bytes, to_pil  # noqa: F401
