"""GAN losses and D's accuracy: small pure functions of D's logits.

Logits, not probabilities, go in: BCE from logits is exact where sigmoid would saturate.
"""

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def bce_with_logits(logits: Array, target: float) -> Array:
  """Mean binary cross-entropy of `logits` [N] against a constant label."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def non_saturating_g_loss(fake_logits: Array) -> Array:
  """G maximises log D(G(z)) (Goodfellow et al. 2014, sec. 3): BCE(1, D(G(z)))."""
  return bce_with_logits(fake_logits, 1.0)


def non_saturating_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """BCE(1, D(x)) + BCE(0, D(G(z))): the sum, as the seed (and Keras' tutorial) has it."""
  return bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)


# `config.loss.name` -> (G loss of fake logits, D loss of real and fake logits).
LOSSES = {
    'non_saturating': (non_saturating_g_loss, non_saturating_d_loss),
}


def accuracy_real(real_logits: Array) -> Array:
  """Share of real images D calls real: probability sigmoid(logit) > 0.5, i.e. logit > 0.

  The seed compared the logits themselves with 0.5, a bug: a logit of 0.3 is a
  probability of 0.57 ("real") but counted as "fake".
  """
  return jnp.mean(real_logits > 0)


def accuracy_fake(fake_logits: Array) -> Array:
  """Share of generated images D calls fake: probability <= 0.5, i.e. logit <= 0."""
  return jnp.mean(fake_logits <= 0)
