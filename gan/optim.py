"""The optimizers of G and D from `config.optim.G` and `config.optim.D` (optax).

Each network's learning rate follows `optim.<net>.schedule` over that network's updates
in the run: 'constant', or 'linear' decay to 0 at its last update (SNGAN's schedule).
"""

import ml_collections
import numpy as np
import optax


# `optim.schedule` -> the learning rate (a number, or optax's function of the update count)
# given the peak rate and the network's updates in the run.
SCHEDULES = {
    'constant': lambda rate, num_updates: rate,
    'linear': lambda rate, num_updates: optax.linear_schedule(rate, 0.0, num_updates),
}


def _adam(optim: ml_collections.ConfigDict, num_updates: int) -> optax.GradientTransformation:
  rate = SCHEDULES[optim.schedule](optim.learning_rate, num_updates)
  return optax.adam(rate, b1=optim.b1, b2=optim.b2, eps=optim.eps)


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
  found = OPTIMIZERS[optim.name][1](optim)
  if optim.schedule not in SCHEDULES:
    found.append(f'schedule={optim.schedule!r}: use one of {sorted(SCHEDULES)}.')
  return found


def make_optimizer(optim: ml_collections.ConfigDict,
                   num_updates: int) -> optax.GradientTransformation:
  """The optimizer of a network updated `num_updates` times in the run."""
  if optim.name not in OPTIMIZERS:
    raise ValueError(f'Unknown optimizer {optim.name!r}; use one of {sorted(OPTIMIZERS)}.')
  if optim.schedule not in SCHEDULES:
    raise ValueError(f'Unknown schedule {optim.schedule!r}; use one of {sorted(SCHEDULES)}.')
  return OPTIMIZERS[optim.name][0](optim, num_updates)
