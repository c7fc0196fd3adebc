"""Augmentations of what D sees, by name: `config.augment.policy` is a comma-separated list.

An augmentation is one module here registering a function

  @augment.register('flip')
  def flip(key, images): ...  # [N, H, W, C] float32 -> the same shape

that is differentiable in `images` (G's gradient passes through it) and draws its
randomness from `key` alone. `gan.networks.Networks` is the one place they are applied:
to every image D sees, real and fake, in D's updates and in G's, each call with its own
named stream of the step.
"""

from gan.augment import diffaugment, flip  # noqa: F401  (built-ins register on import)
from gan.augment.registry import (AUGMENTATIONS, Augmentation, make_policy, parse_policy,
                                  problems, register)

__all__ = ['AUGMENTATIONS', 'Augmentation', 'make_policy', 'parse_policy', 'problems',
           'register']
