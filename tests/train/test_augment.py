"""Device-side crop-and-flip equals the per-image reference, and is random per sample."""

import torch

from sharens.train.augment import random_crop_flip


def reference(image: torch.Tensor, dy: int, dx: int, flip: bool, padding: int = 4) -> torch.Tensor:
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    crop = padded[:, dy : dy + image.shape[1], dx : dx + image.shape[2]]
    return crop.flip(2) if flip else crop


def test_each_image_is_one_padded_crop_possibly_flipped():
    images = torch.randn(64, 3, 8, 8)
    out = random_crop_flip(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    for image, result in zip(images, out, strict=True):
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if torch.equal(reference(image, dy, dx, f), result)]
        assert matches, "not a padded crop (or its mirror) of its own image"


def test_offsets_and_flips_differ_between_samples_and_follow_the_seed():
    images = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16).repeat(256, 1, 1, 1)
    a = random_crop_flip(images, generator=torch.Generator().manual_seed(1))
    b = random_crop_flip(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert len({tuple(x.flatten()[:40].tolist()) for x in a}) > 50  # many distinct crops in one batch


def test_uint8_images_stay_uint8():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert random_crop_flip(images).dtype == torch.uint8
