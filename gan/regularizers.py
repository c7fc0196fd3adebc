"""Gradient penalties on D, added to its loss by the train step (`config.loss`).

Both measure the gradient of D's logits with respect to its input images, per image:

  gradient_penalty  E[(||grad D(x_hat)|| - 1)^2] on random interpolates x_hat between
                    real and fake images (WGAN-GP, Gulrajani et al. 2017; lambda 10);
  r1                E[||grad D(x)||^2] / 2 on real images (Mescheder et al. 2018),
                    weighted by gamma.

`logits_of(images) -> [N]` is D as the step applies it (train mode: augmentation, dropout,
and batch statistics, which couple the examples of a batch: with BatchNorm in D the
"per-image" gradient is of the summed logits). Differentiable in D's parameters (the step
takes the gradient of the gradient).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def input_gradient_norms(logits_of: Callable[[Array], Array], images: Array) -> Array:
  """||d D(x_i) / d x_i|| for each image, [N]."""
  grads = jax.grad(lambda x: jnp.sum(logits_of(x)))(images)
  return jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1) + 1e-12)


def interpolates(key: Array, real: Array, fake: Array) -> Array:
  """eps * real + (1 - eps) * fake, eps ~ U[0, 1] per image."""
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  return eps * real + (1 - eps) * fake


def gradient_penalty(logits_of: Callable[[Array], Array], key: Array, real: Array,
                     fake: Array) -> Array:
  norms = input_gradient_norms(logits_of, interpolates(key, real, fake))
  return jnp.mean((norms - 1) ** 2)


def r1_penalty(logits_of: Callable[[Array], Array], real: Array) -> Array:
  return jnp.mean(input_gradient_norms(logits_of, real) ** 2) / 2
