"""The optimizers of G and D from `config.optim.G` and `config.optim.D` (optax)."""

import ml_collections
import numpy as np
import optax


def _adam(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.adam(optim.learning_rate, b1=optim.b1, b2=optim.b2, eps=optim.eps)


def _adam_problems(optim: ml_collections.ConfigDict) -> list[str]:
  problems = []
  if not (np.isfinite(optim.learning_rate) and optim.learning_rate > 0):
    problems.append(f'learning_rate={optim.learning_rate} must be a positive number.')
  if not (0 <= optim.b1 < 1 and 0 <= optim.b2 < 1):
    problems.append(f'b1={optim.b1}, b2={optim.b2} must be in [0, 1).')
  if not optim.eps > 0:
    problems.append(f'eps={optim.eps} must be > 0.')
  return problems


# `optim.name` -> (the optax transformation, the problems of its settings).
OPTIMIZERS = {'adam': (_adam, _adam_problems)}


def problems(optim: ml_collections.ConfigDict) -> list[str]:
  if optim.name not in OPTIMIZERS:
    return [f'name={optim.name!r}: use one of {sorted(OPTIMIZERS)}.']
  return OPTIMIZERS[optim.name][1](optim)


def make_optimizer(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
  if optim.name not in OPTIMIZERS:
    raise ValueError(f'Unknown optimizer {optim.name!r}; use one of {sorted(OPTIMIZERS)}.')
  return OPTIMIZERS[optim.name][0](optim)
