"""The optimizers: Adam as configured, its learning rate constant or decaying linearly."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import recap
from gan import optim
from gan.networks import Networks
from gan.state import create_state


def _adam(schedule: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'name': 'adam', 'learning_rate': 1e-2, 'b1': 0.0,
                                    'b2': 0.0, 'eps': 1e-12, 'schedule': schedule})


def _steps(tx, num: int) -> np.ndarray:
  """Each update of a parameter whose gradient is always 1: with b1 = b2 = 0, Adam's
  update is the learning rate itself."""
  params = jnp.zeros(())
  state = tx.init(params)
  sizes = []
  for _ in range(num):
    updates, state = tx.update(jnp.ones(()), state, params)
    sizes.append(-float(updates))
  return np.array(sizes)


def test_constant_schedule_is_plain_adam():
  np.testing.assert_allclose(_steps(optim.make_optimizer(_adam('constant'), 10), 4), 1e-2,
                             rtol=1e-5)
  # The same optax state as before schedules existed: old checkpoints restore.
  assert (jax.tree_util.tree_structure(optim.make_optimizer(_adam('constant'), 10).init(0.0)) ==
          jax.tree_util.tree_structure(optax.adam(1e-2).init(0.0)))


def test_linear_schedule_decays_to_zero_at_the_last_update():
  sizes = _steps(optim.make_optimizer(_adam('linear'), 10), 11)
  np.testing.assert_allclose(sizes, 1e-2 * np.clip(1 - np.arange(11) / 10, 0, None),
                             rtol=1e-5, atol=1e-9)


def test_each_network_decays_over_its_own_updates():
  """G updates once a step, D n_dis times: D's schedule is n_dis times longer."""
  config = recap.get_config('smoke')
  config.train.update_rule, config.train.n_dis = 'alternating', 2
  for net in ('G', 'D'):
    config.optim[net].schedule = 'linear'
  state = create_state(config, Networks(config), total_steps=6)
  for net_state, updates in ((state.g, 6), (state.d, 12)):
    sizes = _steps(net_state.tx, updates + 1)
    assert sizes[-1] == pytest.approx(0, abs=1e-12) and sizes[-2] > 0


def test_unknown_optimizer_or_schedule_is_named():
  assert optim.problems(_adam('cosine')) == ["schedule='cosine': use one of ['constant', 'linear']."]
  with pytest.raises(ValueError, match="Unknown schedule 'cosine'"):
    optim.make_optimizer(_adam('cosine'), 10)
