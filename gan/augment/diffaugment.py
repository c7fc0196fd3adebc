"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout of D's inputs.

Registered as three augmentations, composed by the policy string in the paper's order:
`config.augment.policy = 'color,translation,cutout'`. Each draws per image from its own
key, and is differentiable in the images (G learns through what D sees), with the
paper's ranges for images in [-1, 1]:

  color        brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5)
  translation  a shift of up to 1/8 of the image each way (integer pixels), zero fill
  cutout       a zero square of half the image's side, centred anywhere (clipped at the
               borders)
"""

import jax
import jax.numpy as jnp

from gan.augment import registry

Array = jax.Array

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _per_image(key: Array, images: Array, low: float, high: float) -> Array:
  return jax.random.uniform(key, (images.shape[0], 1, 1, 1), images.dtype, low, high)


@registry.register('color')
def color(key: Array, images: Array) -> Array:
  brightness, saturation, contrast = jax.random.split(key, 3)
  images = images + _per_image(brightness, images, -0.5, 0.5)
  mean = images.mean(axis=3, keepdims=True)
  images = (images - mean) * _per_image(saturation, images, 0.0, 2.0) + mean
  mean = images.mean(axis=(1, 2, 3), keepdims=True)
  return (images - mean) * _per_image(contrast, images, 0.5, 1.5) + mean


def translation_offsets(key: Array, images: Array) -> Array:
  """int32 [N, 2]: each image's (down, right) shift, uniform in [-s, s], s = 1/8 of the
  size rounded."""
  size = images.shape[1:3]
  shift = jnp.asarray([int(size[0] * TRANSLATION_RATIO + 0.5),
                       int(size[1] * TRANSLATION_RATIO + 0.5)])
  return jax.random.randint(key, (images.shape[0], 2), -shift, shift + 1, jnp.int32)


def translate(images: Array, offsets: Array) -> Array:
  """Each image moved by its (down, right) offsets, zeros where nothing moved in."""
  height, width = images.shape[1:3]
  rows = jnp.arange(height)[None, :] - offsets[:, :1]   # [N, H]: the source row of each.
  cols = jnp.arange(width)[None, :] - offsets[:, 1:]    # [N, W]
  inside = (((rows >= 0) & (rows < height))[:, :, None] &
            ((cols >= 0) & (cols < width))[:, None, :])  # [N, H, W]
  gathered = jax.vmap(lambda image, r, c: image[r[:, None], c[None, :]])(
      images, jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1))
  return jnp.where(inside[..., None], gathered, 0)


@registry.register('translation')
def translation(key: Array, images: Array) -> Array:
  return translate(images, translation_offsets(key, images))


def cutout_centres(key: Array, images: Array) -> Array:
  """int32 [N, 2]: each square's (row, column) centre, uniform over the image (and one
  past its end for an even side, as the paper's code draws them)."""
  side = _cutout_side(images)
  size = jnp.asarray(images.shape[1:3])
  return jax.random.randint(key, (images.shape[0], 2), 0, size + (1 - side % 2), jnp.int32)


def _cutout_side(images: Array) -> int:
  return int(images.shape[1] * CUTOUT_RATIO + 0.5)


def cut_out(images: Array, centres: Array, side: int) -> Array:
  """Each image with the side x side square at its centre zeroed (clipped at borders)."""
  low = centres - side // 2                                  # [N, 2]
  rows = jnp.arange(images.shape[1])[None, :]
  cols = jnp.arange(images.shape[2])[None, :]
  in_rows = (rows >= low[:, :1]) & (rows < low[:, :1] + side)  # [N, H]
  in_cols = (cols >= low[:, 1:]) & (cols < low[:, 1:] + side)  # [N, W]
  square = in_rows[:, :, None] & in_cols[:, None, :]
  return jnp.where(square[..., None], 0, images)


@registry.register('cutout')
def cutout(key: Array, images: Array) -> Array:
  return cut_out(images, cutout_centres(key, images), _cutout_side(images))
