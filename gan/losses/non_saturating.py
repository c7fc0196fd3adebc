"""The non-saturating GAN loss (Goodfellow et al. 2014, sec. 3), as the seed has it."""

import jax
import jax.numpy as jnp
import optax

from gan.losses import registry

Array = jax.Array


def bce_with_logits(logits: Array, target: float) -> Array:
  """Mean binary cross-entropy of `logits` [N] against a constant label; exact where
  sigmoid would saturate."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def g_loss(fake_logits: Array) -> Array:
  """G maximises log D(G(z)): BCE(1, D(G(z)))."""
  return bce_with_logits(fake_logits, 1.0)


def d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """BCE(1, D(x)) + BCE(0, D(G(z))): the sum, as the seed (and Keras' tutorial) has it."""
  return bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)


@registry.register('non_saturating')
def make() -> registry.Loss:
  return registry.Loss(g_loss=g_loss, d_loss=d_loss)
