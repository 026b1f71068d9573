"""Batched image augmentation on the device: random crop with zero padding and horizontal flip.

He et al.'s CIFAR recipe (pad 4, random 32x32 crop, flip) done for a whole
mini-batch with tensor ops, each sample with its own offsets and flip, so there
is no per-sample Python, no PIL and no DataLoader worker.
"""

from __future__ import annotations

import torch


def random_crop_flip(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W): each image zero-padded, cropped at a random offset, flipped with p = 1/2."""
    n, _, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=device)).view(n, 1, h, 1)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    index = torch.arange(n, device=device).view(n, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=device).view(1, -1, 1, 1)
    return padded[index, channels, rows, cols.view(n, 1, 1, w)]


AUGMENTATIONS = {
    # He et al.'s CIFAR recipe: pad 4, random 32x32 crop, horizontal flip
    "crop_flip": lambda images, generator: random_crop_flip(images, 4, generator),
}


def get_augmentation(name: str | None):
    """The batch transform a table names (None: no augmentation)."""
    if name is None:
        return None
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; known: {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
