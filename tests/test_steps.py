"""The train step: what each update touches, compile-once, determinism, sharding."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

from configs import baseline, recap
from gan import data, parallel, steps, streams
from gan import networks as networks_module
from gan.networks import Networks
from gan.sampling import trained_variables
from gan.state import create_state, ema_decay

BATCH = 8
# Two separately compiled programs computing the same step agree to float rounding on the
# CPU. On a GPU float32 convolutions run in TF32 by default and each program picks its
# own cuDNN algorithms: up to 9e-5 relative measured on an H200 (none of it on the CPU).
TOL = (dict(rtol=1e-5, atol=1e-6) if jax.default_backend() == 'cpu' else
       dict(rtol=1e-3, atol=1e-4))


def _config(update_rule='simultaneous'):
  config = recap.get_config('smoke')
  config.train.batch_size = BATCH
  config.train.update_rule = update_rule
  return config


def _mesh(num_devices=None) -> Mesh:
  return Mesh(np.array(jax.devices()[:num_devices]), ('data',))


def _setup(config, mesh):
  networks = Networks(config)
  state = jax.device_put(create_state(config, networks), parallel.replicated(mesh))
  return state, steps.make_train_step(config, networks, mesh)


def _host_batch(num=BATCH, seed=0):
  rng = np.random.default_rng(seed)
  return {'image': rng.integers(0, 256, (num, 32, 32, 3), dtype=np.uint8),
          'label': rng.integers(0, 10, num, dtype=np.int32)}


def _batch(mesh, seed=0, num=BATCH):
  return jax.device_put(_host_batch(num, seed), parallel.batch_sharding(mesh))


def _changed(before, after) -> bool:
  return any(not np.array_equal(a, b) for a, b in
             zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(after)))


@pytest.mark.parametrize('update_rule', ['simultaneous', 'alternating'])
def test_step_updates_both_networks_and_reports_metrics(update_rule):
  mesh = _mesh()
  state, train_step = _setup(_config(update_rule), mesh)
  before = jax.device_get(state)
  state, metrics = train_step(state, _batch(mesh))
  after = jax.device_get(state)
  for net in ('g', 'd'):
    assert _changed(getattr(before, net).params, getattr(after, net).params)
    assert _changed(getattr(before, net).batch_stats, getattr(after, net).batch_stats)
    assert int(getattr(after, net).step) == 1  # One G and one D update.
  assert int(after.step) == 1 and int(after.images_shown) == BATCH
  np.testing.assert_array_equal(after.key, before.key)  # The base key never changes.
  assert set(metrics) == {'G/loss', 'D/loss', 'D/acc_real', 'D/acc_fake', 'G/grad_norm',
                          'D/grad_norm'}
  for value in jax.device_get(metrics).values():
    assert np.isfinite(value)


def test_alternating_halves_leave_the_other_network_untouched():
  """The D update changes D only; the G update changes G only (BN statistics included,
  and D's spectral-norm vectors, which only D's own updates advance)."""
  config = _config('alternating')
  config.model.dcgan.D.spectral_norm = True
  networks = Networks(config)
  state = create_state(config, networks)
  d_update, g_update = steps.make_alternating_updates(config, networks)
  batch = _batch(_mesh(1))

  after_d, _ = jax.jit(d_update, static_argnums=2)(state, batch, 0)
  chex.assert_trees_all_equal(after_d.g.params, state.g.params)
  chex.assert_trees_all_equal(after_d.g.batch_stats, state.g.batch_stats)
  chex.assert_trees_all_equal(after_d.g.opt_state, state.g.opt_state)
  assert _changed(state.d.params, after_d.d.params)
  assert _changed(state.d.batch_stats, after_d.d.batch_stats)
  assert _changed(state.d.spectral_norm, after_d.d.spectral_norm)  # D's own update iterates.

  after_g, _ = jax.jit(g_update)(after_d)
  chex.assert_trees_all_equal(after_g.d.params, after_d.d.params)
  chex.assert_trees_all_equal(after_g.d.batch_stats, after_d.d.batch_stats)
  chex.assert_trees_all_equal(after_g.d.spectral_norm, after_d.d.spectral_norm)
  chex.assert_trees_all_equal(after_g.d.opt_state, after_d.d.opt_state)
  assert _changed(after_d.g.params, after_g.g.params)
  assert _changed(after_d.g.batch_stats, after_g.g.batch_stats)


def test_step_is_traced_once_across_steps():
  config = _config()
  networks = Networks(config)
  mesh = _mesh()
  state = jax.device_put(create_state(config, networks), parallel.replicated(mesh))
  chex.clear_trace_counter()
  step_fn = jax.jit(chex.assert_max_traces(steps.make_step_fn(config, networks), n=1),
                    donate_argnums=0)
  for seed in range(3):
    state, _ = step_fn(state, _batch(mesh, seed))  # A second trace would raise.


def test_compiled_step_refuses_to_recompile():
  mesh = _mesh()
  state, train_step = _setup(_config(), mesh)
  for seed in range(3):
    state, _ = train_step(state, _batch(mesh, seed))
  assert train_step._cache_size() == 1
  odd = _batch(mesh, num=2 * BATCH)
  with pytest.raises(RuntimeError, match='compiled again'):
    train_step(state, odd)


def _k_steps_both_ways(config, num_steps=3):
  """(state and metrics of `num_steps` calls of one step, the same as one call of
  `make_train_steps` gathering on the device, the same from batches the host gathered)."""
  mesh = _mesh()
  networks = Networks(config)
  init = lambda: jax.device_put(create_state(config, networks), parallel.replicated(mesh))
  dataset = _host_batch(5 * BATCH)
  indices = np.random.default_rng(1).permutation(5 * BATCH)[:num_steps * BATCH]
  indices = indices.reshape(num_steps, BATCH).astype(np.int32)
  take = lambda idx: {key: value[idx] for key, value in dataset.items()}
  train_step = steps.make_train_step(config, networks, mesh)
  state, metrics = init(), []
  for idx in indices:
    state, step_metrics = train_step(state, jax.device_put(take(idx),
                                                           parallel.batch_sharding(mesh)))
    metrics.append(step_metrics)
  stacked = jax.tree.map(lambda *m: np.stack(m), *jax.device_get(metrics))
  train_steps = steps.make_train_steps(config, networks, mesh)
  gathered = train_steps(init(), jax.device_put(dataset, parallel.replicated(mesh)), indices)
  from_host = train_steps(init(), None, take(indices))
  return (jax.device_get(state), stacked), jax.device_get(gathered), jax.device_get(from_host)


def test_k_steps_in_one_call_equal_k_calls_of_one_step():
  """The baseline (dropout keys from the step count) in a lax.scan of 3 steps, its batches
  gathered on the device or by the host, against 3 calls of the one-step program."""
  config = baseline.get_config('smoke')
  config.train.batch_size = BATCH
  (one_state, one_metrics), (state, metrics), (host_state, host_metrics) = _k_steps_both_ways(config)
  assert int(state.step) == 3 and metrics['G/loss'].shape == (3,)
  # XLA fuses a loop body differently from a lone step: equal up to float rounding.
  chex.assert_trees_all_close(metrics, one_metrics, **TOL)
  chex.assert_trees_all_close(jax.tree_util.tree_leaves(state),
                              jax.tree_util.tree_leaves(one_state), **{**TOL, 'atol': 1e-4})
  # Where the batch comes from changes nothing (on the CPU, not even the rounding).
  assert_same = (chex.assert_trees_all_equal if jax.default_backend() == 'cpu' else
                 functools.partial(chex.assert_trees_all_close, **TOL))
  assert_same(jax.tree_util.tree_leaves((state, metrics)),
              jax.tree_util.tree_leaves((host_state, host_metrics)))


def test_k_steps_of_recap_equal_k_steps_in_their_metrics():
  """Recap's conv bias before BatchNorm (see the sharded recap test): metrics only."""
  (_, one_metrics), (_, metrics), _ = _k_steps_both_ways(_config())
  chex.assert_trees_all_close(metrics, one_metrics, **TOL)


def test_train_steps_compile_once_per_k_and_refuse_to_recompile():
  config = _config()
  mesh = _mesh()
  state, _ = _setup(config, mesh)
  train_steps = steps.make_train_steps(config, Networks(config), mesh)
  dataset = jax.device_put(_host_batch(4 * BATCH), parallel.replicated(mesh))
  indices = np.arange(4 * BATCH, dtype=np.int32).reshape(4, BATCH)
  for k in (2, 2, 1):  # A second k compiles a second program, once.
    state, metrics = train_steps(state, dataset, indices[:k])
    assert metrics['D/loss'].shape == (k,)
  assert int(state.step) == 5 and train_steps._cache_size() == 2
  with pytest.raises(RuntimeError, match='compiled again'):
    train_steps(state, dataset, indices[:2].astype(np.int16))


def test_same_seed_same_result_other_seed_other_result():
  def run(seed):
    config = _config()
    config.seed = seed
    mesh = _mesh()
    state, train_step = _setup(config, mesh)
    for i in range(2):
      state, metrics = train_step(state, _batch(mesh, i))
    return jax.device_get((state, metrics))

  first, again, other = run(0), run(0), run(1)
  chex.assert_trees_all_equal(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again))
  assert _changed(first[0].g.params, other[0].g.params)


def _run_on(mesh, config, num_steps=2):
  state, train_step = _setup(config, mesh)
  metrics = []
  for i in range(num_steps):
    state, step_metrics = train_step(state, _batch(mesh, i))
    metrics.append(step_metrics)
  return jax.device_get((state, metrics))


# (rtol, atol) of the states after the steps, by whether Winograd runs. Reductions over a
# split batch add in another order, so the two runs agree up to float rounding. Winograd's
# transforms (constants up to 25) amplify that rounding, and Adam's early updates,
# lr * m / sqrt(v), pass a near-zero gradient's rounding on at full step size: where the
# rounding flips such a gradient's sign, the parameter moves by up to 2 lr the other way
# (D's kernel: 11 of 204,800 values off by up to 1.1e-4, lr 1e-4, in the streams of
# gan.streams). The exact path keeps the bound of float rounding.
_SHARDED_STATE_TOLERANCE = {False: (1e-5, 1e-6), True: (1e-3, 2 * 1e-4)}


@pytest.mark.parametrize('winograd', [False, True])
def test_sharded_step_equals_one_device_step(winograd):
  """The baseline (dropout in D, no bias before any BatchNorm) over 1 and 2 devices."""
  assert jax.device_count() >= 2, 'conftest asks XLA for 2 host devices'
  config = baseline.get_config('smoke')
  config.train.batch_size = BATCH
  config.model.dcgan.winograd = winograd
  assert config.optim.D.learning_rate == config.optim.G.learning_rate == 1e-4  # The 2 lr above.
  (one_state, one_metrics), (two_state, two_metrics) = (
      _run_on(_mesh(1), config), _run_on(_mesh(2), config))
  chex.assert_trees_all_close(one_metrics, two_metrics, rtol=1e-5, atol=1e-6)
  rtol, atol = _SHARDED_STATE_TOLERANCE[winograd]
  chex.assert_trees_all_close(jax.tree_util.tree_leaves(one_state),
                              jax.tree_util.tree_leaves(two_state), rtol=rtol, atol=atol)


def test_sharded_recap_step_equals_one_device_step_in_its_metrics():
  """Recap's D has a conv bias right before BatchNorm: its true gradient is 0, so Adam
  turns rounding noise into +-lr steps there, whatever the device count. The losses,
  accuracies and gradient norms, which that bias cannot change, must agree."""
  (_, one_metrics), (_, two_metrics) = _run_on(_mesh(1), _config()), _run_on(_mesh(2), _config())
  chex.assert_trees_all_close(one_metrics, two_metrics, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('get_config', [recap.get_config, baseline.get_config])
def test_simultaneous_step_takes_each_networks_gradient_of_its_own_loss(get_config):
  """The two-tape pullback gives the gradients that separate jax.grad calls give (baseline:
  with dropout masks from the step's keys)."""
  from gan.losses import non_saturating
  config = get_config('smoke')
  config.train.batch_size = BATCH
  # The exact-tap layers: Winograd's rounding (tested against Flax's layers in test_ops)
  # differs between this jitted step and the reference below by up to 4e-5 of G's
  # gradient norm, more than the rounding of the mechanism tested here.
  config.model.dcgan.winograd = False
  networks = Networks(config)
  state = create_state(config, networks)
  batch = _batch(_mesh(1))
  _, metrics = jax.jit(steps.make_step_fn(config, networks))(state, batch)

  # The streams the step draws from (steps' docstring), by hand.
  key = jax.random.fold_in(streams.named(streams.step_key(state.key, state.step), 'D'), 0)
  z = jax.random.normal(streams.named(key, 'z'), (BATCH, config.model.latent_dim))
  real = data.to_float(batch['image'])

  def losses_of(g_params, d_params):
    fake, _ = networks.generator.apply(
        {'params': g_params, 'batch_stats': state.g.batch_stats}, z, None, train=True,
        mutable=['batch_stats'])
    apply_d = lambda stats, x, name: networks.discriminator.apply(
        {'params': d_params, 'batch_stats': stats}, x, None, train=True,
        mutable=['batch_stats'], rngs={'dropout': networks.dropout_key(streams.named(key, name))})
    real_logits, stats = apply_d(state.d.batch_stats, real, 'real')
    fake_logits, _ = apply_d(stats['batch_stats'], fake, 'fake')
    return (non_saturating.g_loss(fake_logits),
            non_saturating.d_loss(real_logits, fake_logits))

  g_grads = jax.grad(lambda g: losses_of(g, state.d.params)[0])(state.g.params)
  d_grads = jax.grad(lambda d: losses_of(state.g.params, d)[1])(state.d.params)
  g_loss, d_loss = losses_of(state.g.params, state.d.params)
  np.testing.assert_allclose(metrics['G/loss'], g_loss, rtol=TOL['rtol'])
  np.testing.assert_allclose(metrics['D/loss'], d_loss, rtol=TOL['rtol'])
  # The norms sum the rounding of every gradient through BatchNorm of a small batch, the
  # jitted step's fusions against op-by-op here: up to 1.2e-4 relative on some x86 CPUs.
  # Another network's loss, or a missed tape, moves them by far more than 1e-3.
  np.testing.assert_allclose(metrics['G/grad_norm'], optax.tree.norm(g_grads), rtol=1e-3)
  np.testing.assert_allclose(metrics['D/grad_norm'], optax.tree.norm(d_grads), rtol=1e-3)


@pytest.mark.parametrize('impl', networks_module.DROPOUT_RNGS)
def test_dropout_keys_drop_at_the_configured_rate_and_differ_by_step(impl):
  config = baseline.get_config('smoke')
  config.train.dropout_rng = impl
  networks = Networks(config)
  dropout = nn.Dropout(0.3, deterministic=False)
  ones = jnp.ones((256, 16, 16, 64))
  base = streams.run_keys(config.seed)['train']
  masks = [dropout.apply({}, ones, rngs={'dropout': networks.dropout_key(
      streams.named(streams.step_key(base, step), 'real'))}) == 0 for step in (0, 1)]
  for mask in masks:
    assert abs(float(mask.mean()) - 0.3) < 0.002  # 4.2M draws: std 0.0002.
  # Independent masks disagree on 2 * 0.3 * 0.7 = 42% of the units.
  assert abs(float((masks[0] != masks[1]).mean()) - 0.42) < 0.003


def test_bfloat16_compute_keeps_float32_parameters():
  config = _config()
  config.model.compute_dtype = 'bfloat16'
  mesh = _mesh()
  state, train_step = _setup(config, mesh)
  state, metrics = train_step(state, _batch(mesh))
  for value in jax.device_get(metrics).values():
    assert np.isfinite(value)
  for leaf in jax.tree_util.tree_leaves((state.g.params, state.d.params, state.g.opt_state)):
    assert leaf.dtype in (np.float32, np.int32)


@pytest.mark.parametrize('update_rule', ['simultaneous', 'alternating'])
def test_g_ema_averages_g_with_ramped_decay(update_rule):
  config = _config(update_rule)
  config.train.g_ema_decay = 0.999
  mesh = _mesh()
  state, train_step = _setup(config, mesh)
  chex.assert_trees_all_equal(state.g_ema, state.g.params)  # Starts at G's initialisation.
  ema = jax.device_get(state.g_ema)
  for t in range(3):
    state, _ = train_step(state, _batch(mesh, seed=t))
    rate = min(0.999, (1 + t) / (10 + t))  # The ramp: 0.1, 0.18, 0.25.
    params = jax.device_get(state.g.params)
    ema = jax.tree.map(lambda e, p, r=rate: r * e + (1 - r) * p, ema, params)
    chex.assert_trees_all_close(jax.device_get(state.g_ema), ema, rtol=1e-6, atol=1e-7)
  assert _changed(state.g_ema, state.g.params)  # An average, not a copy.
  # Sampling uses the average, with its own running statistics, averaged alike.
  variables = trained_variables(state)
  chex.assert_trees_all_equal(variables['params'], state.g_ema)
  chex.assert_trees_all_equal(variables['batch_stats'], state.g_ema_collections['batch_stats'])
  assert _changed(state.g_ema_collections['batch_stats'], state.g.batch_stats)


def test_without_ema_the_state_keeps_none_and_samples_g_itself():
  config = _config()
  assert config.train.g_ema_decay == 0  # The seed's designs keep no average.
  mesh = _mesh()
  state, train_step = _setup(config, mesh)
  state, _ = train_step(state, _batch(mesh))
  assert state.g_ema is None
  chex.assert_trees_all_equal(trained_variables(state)['params'], state.g.params)


def _alternating(n_dis=1, g_batch_size=0, policy=''):
  config = _config('alternating')
  config.train.n_dis = n_dis
  config.train.g_batch_size = g_batch_size
  config.augment.policy = policy
  return config


def test_n_dis_makes_that_many_d_updates_each_on_its_own_real_batch():
  """One step of n_dis=2 equals D update 0 on elements 0, 2, 4, ..., D update 1 on
  1, 3, 5, ..., then the G update: and it counts 2 D steps, 1 G step, 2B images."""
  config = _alternating(n_dis=2)
  networks = Networks(config)
  state = create_state(config, networks)
  batch = _host_batch(2 * BATCH)
  after, metrics = jax.jit(steps.make_step_fn(config, networks))(state, batch)
  assert (int(after.d.step), int(after.g.step), int(after.step)) == (2, 1, 1)
  assert int(after.images_shown) == 2 * BATCH

  d_update, g_update = steps.make_alternating_updates(config, networks)
  by_hand, d_metrics = state, []
  for j in range(2):
    by_hand, m = jax.jit(d_update, static_argnums=2)(
        by_hand, {k: v[j::2] for k, v in batch.items()}, j)
    d_metrics.append(m)
  by_hand, _ = jax.jit(g_update)(by_hand)
  # The step unrolls the D updates into one program, fused otherwise than these separate
  # calls. Adam's first update is lr * g / (|g| + eps): for the rare parameter whose
  # gradient is near rounding size, rounding moves it by up to a step. So: all but a few
  # elements in a thousand equal (a wrong batch or update order changes most of them).
  for ours, theirs in zip(jax.tree_util.tree_leaves(jax.device_get((after.g, after.d))),
                          jax.tree_util.tree_leaves(jax.device_get((by_hand.g, by_hand.d)))):
    differ = ~np.isclose(ours, theirs, **TOL)
    assert differ.mean() < 1e-3, (differ.sum(), differ.size)
  np.testing.assert_allclose(metrics['D/loss'], np.mean([m['D/loss'] for m in d_metrics]),
                             rtol=1e-5)


def test_n_dis_step_runs_sharded_and_in_calls_of_k_steps():
  config = _alternating(n_dis=2)
  mesh = _mesh()
  state, _ = _setup(config, mesh)
  train_steps = steps.make_train_steps(config, Networks(config), mesh)
  dataset = jax.device_put(_host_batch(8 * BATCH), parallel.replicated(mesh))
  indices = np.arange(6 * BATCH, dtype=np.int32).reshape(3, 2 * BATCH)
  state, metrics = train_steps(state, dataset, indices)
  assert metrics['D/loss'].shape == (3,) and np.isfinite(jax.device_get(metrics['D/loss'])).all()
  assert (int(state.d.step), int(state.g.step), int(state.images_shown)) == (6, 3, 6 * BATCH)


def test_g_batch_size_sets_the_g_update_and_leaves_the_d_update():
  states = {}
  for g_batch in (0, 2 * BATCH):
    config = _alternating(g_batch_size=g_batch)
    networks = Networks(config)
    states[g_batch], _ = jax.jit(steps.make_step_fn(config, networks))(
        create_state(config, networks), _host_batch())
  # D's update: its own batch.
  chex.assert_trees_all_equal(jax.tree_util.tree_leaves(states[0].d),
                              jax.tree_util.tree_leaves(states[2 * BATCH].d))
  assert _changed(states[0].g.params, states[2 * BATCH].g.params)  # G: twice the samples.
  assert int(states[2 * BATCH].images_shown) == BATCH  # Real images shown: D's batch.


def test_ema_half_life_in_kimg_sets_the_decay_per_step():
  config = _config()
  config.train.g_ema_half_life_kimg = 10.0
  # 10 kimg at 8 images a step is 1250 steps: the weight of an old value halves in them.
  decay = ema_decay(config)
  assert decay ** (10_000 / BATCH) == pytest.approx(0.5)
  config.train.n_dis, config.train.update_rule = 2, 'alternating'  # 16 images a step.
  assert ema_decay(config) ** (10_000 / (2 * BATCH)) == pytest.approx(0.5)

  config = _config()
  config.train.g_ema_half_life_kimg = 10.0
  networks = Networks(config)
  late = create_state(config, networks).replace(step=jnp.asarray(10 ** 6, jnp.int32))
  after, _ = jax.jit(steps.make_step_fn(config, networks))(late, _host_batch())
  # Past the ramp the rate is the decay itself.
  expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, late.g_ema, after.g.params)
  chex.assert_trees_all_close(after.g_ema, expected, rtol=1e-6, atol=1e-7)


def test_an_added_stream_moves_no_other():
  """The augmentation's stream is new: G's draws (its noise, so its BatchNorm statistics)
  are the same with and without it; only what D sees changes."""
  results = {}
  for policy in ('', 'flip'):
    config = _alternating(policy=policy)
    networks = Networks(config)
    results[policy], _ = jax.jit(steps.make_step_fn(config, networks))(
        create_state(config, networks), _host_batch())
  chex.assert_trees_all_equal(results[''].g.batch_stats, results['flip'].g.batch_stats)
  assert _changed(results[''].d.params, results['flip'].d.params)
