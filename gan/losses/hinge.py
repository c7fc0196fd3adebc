"""The hinge loss (Lim & Ye 2017; Miyato et al. 2018's SNGAN and BigGAN train with it).

D: relu(1 - D(x)) + relu(1 + D(G(z))), each a mean over its batch; G: -D(G(z)). D's
logit keeps its meaning (> 0: "real"), so D's accuracies read as for every loss.
"""

import jax
import jax.numpy as jnp

from gan.losses import registry

Array = jax.Array


def g_loss(fake_logits: Array) -> Array:
  return -jnp.mean(fake_logits)


def d_loss(real_logits: Array, fake_logits: Array) -> Array:
  return jnp.mean(jax.nn.relu(1 - real_logits)) + jnp.mean(jax.nn.relu(1 + fake_logits))


@registry.register('hinge')
def make() -> registry.Loss:
  return registry.Loss(g_loss=g_loss, d_loss=d_loss)
