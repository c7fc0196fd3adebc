"""The Wasserstein loss (Arjovsky et al. 2017): D, the critic, scores real above fake.

D: E[D(G(z))] - E[D(x)]; G: -E[D(G(z))]. Train it with a Lipschitz constraint on D:
the gradient penalty of WGAN-GP (`loss.gradient_penalty = 10`, Gulrajani et al. 2017;
`gan.regularizers`) and n_dis D updates per G update. D's accuracies still count a
logit > 0 as "real", which for a critic only says which side of 0 its score falls.
"""

import jax
import jax.numpy as jnp

from gan.losses import registry

Array = jax.Array


def g_loss(fake_logits: Array) -> Array:
  return -jnp.mean(fake_logits)


def d_loss(real_logits: Array, fake_logits: Array) -> Array:
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


@registry.register('wasserstein')
def make() -> registry.Loss:
  return registry.Loss(g_loss=g_loss, d_loss=d_loss)
