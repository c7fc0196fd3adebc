"""Random horizontal flips of D's inputs: each image mirrored left-right with probability 1/2.

CIFAR-10's classes are mirror-symmetric, so a flipped image is as real as the original;
flipping what D sees (real and fake alike) doubles the distinct real images D is shown
without teaching G to flip (ADA's 'xflip', Karras et al. 2020). A selection of pixels, so
G's gradient passes through it unchanged.
"""

import jax
import jax.numpy as jnp

from gan.augment import registry

Array = jax.Array


@registry.register('flip')
def flip(key: Array, images: Array) -> Array:
  mirrored = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(mirrored, images[:, :, ::-1], images)
