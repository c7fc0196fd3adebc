"""The registry of GAN losses and D's accuracies (`gan.losses` re-exports it)."""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Loss:
  g_loss: Callable[[Array], Array]          # fake logits [N] -> G's scalar loss
  d_loss: Callable[[Array, Array], Array]   # real [N], fake [M] logits -> D's scalar loss


LOSSES: dict[str, Loss] = {}


def register(name: str):
  """Decorator: registers the `Loss` the decorated function returns as `name`."""

  def add(make: Callable[[], Loss]) -> Callable[[], Loss]:
    if name in LOSSES:
      raise ValueError(f'Loss {name!r} is registered twice.')
    LOSSES[name] = make()
    return make

  return add


def get(name: str) -> Loss:
  if name not in LOSSES:
    raise ValueError(f'Unknown loss {name!r}; use one of {sorted(LOSSES)}.')
  return LOSSES[name]


def accuracy_real(real_logits: Array) -> Array:
  """Share of real images D calls real: probability sigmoid(logit) > 0.5, i.e. logit > 0.

  The seed compared the logits themselves with 0.5, a bug: a logit of 0.3 is a
  probability of 0.57 ("real") but counted as "fake".
  """
  return jnp.mean(real_logits > 0)


def accuracy_fake(fake_logits: Array) -> Array:
  """Share of generated images D calls fake: probability <= 0.5, i.e. logit <= 0."""
  return jnp.mean(fake_logits <= 0)

