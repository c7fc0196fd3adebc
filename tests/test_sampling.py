"""Sampling G as trained (gan.sampling): statistics that belong to the parameters sampled."""

import chex
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import recap, sngan_projection
from gan import loop, models, parallel, sampling, steps, streams, visualize
from gan.networks import Networks
from gan.state import create_state


def _state(config, networks):
  return jax.device_put(create_state(config, networks), parallel.replicated(parallel.make_mesh()))


def _grid(config, networks, state, mode, size=16):
  """The run's grid noise sampled as `mode` sets G's BatchNorm: [size, H, W, C]."""
  config.eval.g_statistics = mode
  sampler = sampling.Sampling(config, networks)
  z = networks.latents(streams.run_keys(config.seed)['samples'], size)
  return np.asarray(sampler.generate(sampler.variables(state), z, None))


def _fresh_statistics(networks, variables, key, batches, batch_size, momentum):
  """Each batch's BatchNorm statistics as flax's own train-mode update writes them
  (running = momentum * running + (1 - momentum) * batch, from zeros), averaged."""
  zeros = jax.tree.map(jnp.zeros_like, variables['batch_stats'])
  total = zeros
  for index in range(batches):
    batch_key = jax.random.fold_in(key, index)
    z = networks.latents(streams.named(batch_key, 'z'), batch_size)
    labels = networks.labels(streams.named(batch_key, 'labels'), batch_size)
    _, updated = networks.generate_train(
        variables['params'], {'batch_stats': zeros, 'spectral_norm': variables['spectral_norm']},
        z, labels)
    total = jax.tree.map(lambda t, u: t + u / (1 - momentum), total, updated['batch_stats'])
  return jax.tree.map(lambda t: t / batches, total)


def test_standing_statistics_ignore_wrong_running_ones_and_are_freshly_accumulated_ones():
  """A G whose running statistics are deliberately wrong samples with standing statistics
  as with statistics accumulated afresh by flax's own BatchNorm, and the same twice."""
  config = recap.get_config('smoke')
  config.eval.standing_batches, config.eval.standing_batch_size = 3, 32
  networks = Networks(config)
  state = _state(config, networks)
  wrong = state.replace(g=state.g.replace(batch_stats=jax.tree.map(
      lambda x: x * 50.0 + 7.0, state.g.batch_stats)))
  standing = sampling.Sampling(config, networks)
  variables = standing.variables(wrong)
  fresh = _fresh_statistics(networks, sampling.trained_variables(state),
                            streams.run_keys(config.seed)['standing'], 3, 32,
                            config.model.dcgan.bn_momentum)
  chex.assert_trees_all_close(variables['batch_stats'], fresh, rtol=2e-4, atol=1e-5)
  chex.assert_trees_all_equal(variables['params'], state.g.params)
  chex.assert_trees_all_equal(variables, standing.variables(wrong))  # Deterministic.
  chex.assert_trees_all_close(standing.variables(state)['batch_stats'], variables['batch_stats'])
  # Sampled with them, the wrong statistics leave no trace; with 'running' they would.
  z = networks.latents(jax.random.PRNGKey(1), 8)
  good = networks.generate({**variables, 'batch_stats': fresh}, z, None)
  np.testing.assert_allclose(standing.generate(variables, z, None), good, atol=2e-4)
  config.eval.g_statistics = 'running'
  running = sampling.Sampling(config, networks)
  assert np.abs(running.generate(running.variables(wrong), z, None) - good).max() > 0.1


def test_standing_statistics_of_a_conditional_g_with_spectral_norm_keep_its_vectors():
  """Standing statistics replace BatchNorm's statistics only: spectral norm's vectors (a
  BigGAN-style G has them) stay those trained, and labels are drawn for the passes."""
  config = sngan_projection.get_config('smoke')
  config.model.resnet.G.spectral_norm = True
  config.eval.standing_batches, config.eval.standing_batch_size = 2, 8
  networks = Networks(config)
  state = _state(config, networks)
  variables = sampling.Sampling(config, networks).variables(state)
  chex.assert_trees_all_equal(variables['spectral_norm'], state.g.spectral_norm)
  fresh = _fresh_statistics(networks, sampling.trained_variables(state),
                            streams.run_keys(config.seed)['standing'], 2, 8,
                            config.model.resnet.bn_momentum)
  chex.assert_trees_all_close(variables['batch_stats'], fresh, rtol=2e-4, atol=1e-5)


def test_an_ema_at_decay_0_samples_exactly_like_the_live_g():
  config = recap.get_config('smoke')
  config.train.g_ema_half_life_kimg = 1e-9  # A decay of 0 a step: the EMA is G.
  networks = Networks(config)
  mesh = parallel.make_mesh()
  state = _state(config, networks)
  train_step = steps.make_train_step(config, networks, mesh)
  rng = np.random.default_rng(0)
  batch = jax.device_put({'image': rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
                          'label': rng.integers(0, 10, 16, dtype=np.int32)},
                         parallel.batch_sharding(mesh))
  for _ in range(2):
    state, _ = train_step(state, batch)
  live = state.replace(g_ema=None, g_ema_collections=None)
  for mode in sampling.STATISTICS:
    config.eval.g_statistics = mode
    sampler = sampling.Sampling(config, networks)
    ema_vars, live_vars = sampler.variables(state), sampler.variables(live)
    chex.assert_trees_all_equal(ema_vars, live_vars)
    z = networks.latents(jax.random.PRNGKey(2), 8)
    np.testing.assert_array_equal(sampler.generate(ema_vars, z, None),
                                  sampler.generate(live_vars, z, None))


def test_the_ema_keeps_statistics_of_its_own_and_starts_at_the_start_step():
  """With train.g_ema_start_step the EMA copies G (statistics too) until that step, then
  averages both at the full decay (BigGAN-PyTorch's ema_start)."""
  config = recap.get_config('smoke')
  config.train.g_ema_decay = 0.9
  config.train.g_ema_start_step = 2
  networks = Networks(config)
  mesh = parallel.make_mesh()
  state = _state(config, networks)
  train_step = steps.make_train_step(config, networks, mesh)
  rng = np.random.default_rng(0)
  for t in range(3):
    batch = jax.device_put({'image': rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
                            'label': rng.integers(0, 10, 16, dtype=np.int32)},
                           parallel.batch_sharding(mesh))
    before = jax.device_get((state.g_ema, state.g_ema_collections))
    state, _ = train_step(state, batch)
    live = jax.device_get((state.g.params, state.g.collections))
    if t < 2:
      chex.assert_trees_all_equal(jax.device_get((state.g_ema, state.g_ema_collections)), live)
    else:
      expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, before, live)
      chex.assert_trees_all_close(jax.device_get((state.g_ema, state.g_ema_collections)),
                                  expected, rtol=1e-6, atol=1e-7)


def test_batch_statistics_sample_each_batch_in_train_mode():
  config = recap.get_config('smoke')
  config.eval.g_statistics = 'batch'
  networks = Networks(config)
  state = _state(config, networks)
  sampler = sampling.Sampling(config, networks)
  variables = sampler.variables(state)
  z = networks.latents(jax.random.PRNGKey(3), 8)
  expected, _ = networks.generate_train(state.g.params, state.g.collections, z, None)
  np.testing.assert_array_equal(sampler.generate(variables, z, None), expected)
  # A sample depends on its batch: the first four alone come out otherwise.
  assert np.abs(sampler.generate(variables, z[:4], None) - expected[:4]).max() > 1e-3


def test_the_first_grid_of_a_recap_run_is_as_varied_as_train_mode_samples(smoke_config, tmp_path):
  """Recap's running variances start at 1 where G's activations have far less: sampled with
  them the step-0 grid is nearly one picture. With the default standing statistics the
  grid the run writes is as varied as train-mode (batch-statistics) samples."""
  config = recap.get_config()
  networks = Networks(config)
  state = _state(config, networks)
  by_mode = {mode: sampling.diversity(_grid(config, networks, state, mode))
             for mode in sampling.STATISTICS}
  assert by_mode['running'] < 0.1 * by_mode['batch']
  assert by_mode['standing'] == pytest.approx(by_mode['batch'], rel=0.2)

  assert smoke_config.eval.g_statistics == 'standing'  # The default.
  smoke_config.log.tensorboard = False
  loop.train_and_evaluate(smoke_config, tmp_path)
  first = iio.imread(visualize.grid_path(tmp_path, 0))
  size, cell = smoke_config.eval.grid_size, 32
  pad = (first.shape[0] - size * cell) // (size + 1)  # The grid's 1-pixel borders.
  tiles = [first[pad + r * (cell + pad):pad + r * (cell + pad) + cell,
                 pad + c * (cell + pad):pad + c * (cell + pad) + cell, :3]
           for r in range(size) for c in range(size)]
  tiles = np.stack(tiles).astype(np.float32) / 127.5 - 1
  smoke_networks = Networks(smoke_config)
  batch_mode = _grid(smoke_config, smoke_networks, _state(smoke_config, smoke_networks), 'batch',
                     size * size)
  assert sampling.diversity(tiles) == pytest.approx(sampling.diversity(batch_mode), rel=0.25)


def test_diversity_is_zero_for_copies_and_grows_with_spread():
  rng = np.random.default_rng(0)
  one = rng.uniform(-1, 1, (1, 4, 4, 3))
  assert sampling.diversity(np.repeat(one, 5, axis=0)) == pytest.approx(0.0, abs=1e-6)
  spread = rng.uniform(-1, 1, (6, 4, 4, 3))
  assert sampling.diversity(spread) > sampling.diversity(spread * 0.5) > 0


def test_an_unknown_statistics_mode_is_refused():
  config = recap.get_config('smoke')
  config.eval.g_statistics = 'moving'
  with pytest.raises(ValueError, match="eval.g_statistics='moving'"):
    sampling.Sampling(config, Networks(config))
  assert models.BATCH_STATS == 'batch_stats'
