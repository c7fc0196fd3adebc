"""The train step: a pure function `(GANState, uint8 batch) -> (GANState, metrics)`.

`make_train_step` closes over the static settings once and returns the step compiled
with `jax.jit`, its batch sharded over the mesh's 'data' axis and its state replicated,
the input state donated. Under jit, BatchNorm statistics are over the whole global batch,
so a sharded step computes what a one-device step computes.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan import data, losses
from gan.state import GANState, NetState

Array = jax.Array
Metrics = dict[str, Array]
TrainStep = Callable[[GANState, Array], tuple[GANState, Metrics]]


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh's 'data' axis."""
  return NamedSharding(mesh, P('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


# PRNGs the dropout masks can come from (`config.train.dropout_rng`).
DROPOUT_RNGS = ('threefry2x32', 'rbg')


def _key_of(key: Array, impl: str) -> Array:
  """A key of PRNG `impl`, seeded from `key`'s bits (`key` itself for threefry2x32)."""
  if impl == 'threefry2x32':
    return key
  if impl == 'rbg':  # Its keys are 4 uint32 words.
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl='rbg')
  raise ValueError(f'Unknown dropout PRNG {impl!r}; use one of {DROPOUT_RNGS}.')


def _step_keys(state: GANState, dropout_rng: str) -> dict[str, Array]:
  """This step's independent keys: fold_in(key, step), so a resumed run draws the same.
  The dropout keys are keys of PRNG `dropout_rng`, drawn from the same stream."""
  names = ('z', 'z_g', 'dropout_d', 'dropout_g')
  keys = dict(zip(names, jax.random.split(jax.random.fold_in(state.key, state.step), len(names))))
  for name in ('dropout_d', 'dropout_g'):
    keys[name] = _key_of(keys[name], dropout_rng)
  return keys


class _Networks:
  """G and D applied in train mode, and the losses: the pieces every step is made of."""

  def __init__(self, config: ml_collections.ConfigDict, generator: nn.Module,
               discriminator: nn.Module):
    self.generator, self.discriminator = generator, discriminator
    self.g_loss_fn, self.d_loss_fn = losses.LOSSES[config.loss.name]
    self.latent_dim = config.model.latent_dim
    self.dropout_rng = config.train.dropout_rng

  def step_keys(self, state: GANState) -> dict[str, Array]:
    return _step_keys(state, self.dropout_rng)

  def noise(self, key: Array, batch_size: int) -> Array:
    return jax.random.normal(key, (batch_size, self.latent_dim))

  def generate(self, g: NetState, params, z: Array) -> tuple[Array, dict]:
    """(fake images [N, 32, 32, 3], G's updated batch_stats)."""
    fake, updates = self.generator.apply({'params': params, 'batch_stats': g.batch_stats}, z,
                                         train=True, mutable=['batch_stats'])
    return fake, updates['batch_stats']

  def discriminate(self, params, batch_stats, images: Array, key: Array) -> tuple[Array, dict]:
    """(logits [N], D's updated batch_stats)."""
    logits, updates = self.discriminator.apply(
        {'params': params, 'batch_stats': batch_stats}, images, train=True,
        mutable=['batch_stats'], rngs={'dropout': key})
    return logits, updates['batch_stats']

  def d_forward(self, d: NetState, params, real: Array, fake: Array, key: Array):
    """Real then fake through D, its statistics updated in that order (as Keras does)."""
    real_key, fake_key = jax.random.split(key)
    real_logits, stats = self.discriminate(params, d.batch_stats, real, real_key)
    fake_logits, stats = self.discriminate(params, stats, fake, fake_key)
    return real_logits, fake_logits, stats


def _apply_grads(net: NetState, grads, batch_stats) -> NetState:
  return net.apply_gradients(grads=grads, batch_stats=batch_stats)


def _d_metrics(d_loss, real_logits, fake_logits, d_grads) -> Metrics:
  return {'D/loss': d_loss, 'D/acc_real': losses.accuracy_real(real_logits),
          'D/acc_fake': losses.accuracy_fake(fake_logits),
          'D/grad_norm': optax.tree.norm(d_grads)}


def _g_metrics(g_loss, g_grads) -> Metrics:
  return {'G/loss': g_loss, 'G/grad_norm': optax.tree.norm(g_grads)}


def make_simultaneous_step(config: ml_collections.ConfigDict, generator: nn.Module,
                           discriminator: nn.Module) -> TrainStep:
  """The seed's step: one forward pass, G's and D's gradients from their own losses."""
  nets = _Networks(config, generator, discriminator)

  def step(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    real = data.to_float(batch)
    keys = nets.step_keys(state)
    z = nets.noise(keys['z'], real.shape[0])

    def forward(g_params, d_params):
      fake, g_stats = nets.generate(state.g, g_params, z)
      real_logits, fake_logits, d_stats = nets.d_forward(state.d, d_params, real, fake,
                                                         keys['dropout_d'])
      aux = (real_logits, fake_logits, g_stats, d_stats)
      return (nets.g_loss_fn(fake_logits), nets.d_loss_fn(real_logits, fake_logits)), aux

    (g_loss, d_loss), pullback, aux = jax.vjp(forward, state.g.params, state.d.params,
                                              has_aux=True)
    real_logits, fake_logits, g_stats, d_stats = aux
    one, zero = jnp.ones_like(g_loss), jnp.zeros_like(g_loss)
    g_grads, _ = pullback((one, zero))  # Two tapes of one forward pass; XLA drops the
    _, d_grads = pullback((zero, one))  # halves of each pullback that go unused.
    new_state = state.replace(g=_apply_grads(state.g, g_grads, g_stats),
                              d=_apply_grads(state.d, d_grads, d_stats),
                              step=state.step + 1)
    return new_state, {**_g_metrics(g_loss, g_grads),
                       **_d_metrics(d_loss, real_logits, fake_logits, d_grads)}

  return step


def make_alternating_halves(config: ml_collections.ConfigDict, generator: nn.Module,
                            discriminator: nn.Module) -> tuple[TrainStep, TrainStep]:
  """(d_update, g_update): each changes only its own network, BatchNorm statistics too.

  The other network runs in train mode (batch statistics), its running averages kept.
  Neither advances `state.step`; `make_alternating_step` does, after both.
  """
  nets = _Networks(config, generator, discriminator)

  def d_update(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    """A D step against G(z), G held fixed."""
    real = data.to_float(batch)
    keys = nets.step_keys(state)
    fake, _ = nets.generate(state.g, state.g.params, nets.noise(keys['z'], real.shape[0]))
    fake = jax.lax.stop_gradient(fake)

    def objective(d_params):
      real_logits, fake_logits, d_stats = nets.d_forward(state.d, d_params, real, fake,
                                                         keys['dropout_d'])
      return nets.d_loss_fn(real_logits, fake_logits), (real_logits, fake_logits, d_stats)

    (d_loss, (real_logits, fake_logits, d_stats)), d_grads = jax.value_and_grad(
        objective, has_aux=True)(state.d.params)
    return (state.replace(d=_apply_grads(state.d, d_grads, d_stats)),
            _d_metrics(d_loss, real_logits, fake_logits, d_grads))

  def g_update(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    """A G step on fresh noise against the current D, D held fixed."""
    keys = nets.step_keys(state)
    z = nets.noise(keys['z_g'], batch.shape[0])

    def objective(g_params):
      fake, g_stats = nets.generate(state.g, g_params, z)
      fake_logits, _ = nets.discriminate(state.d.params, state.d.batch_stats, fake,
                                         keys['dropout_g'])
      return nets.g_loss_fn(fake_logits), g_stats

    (g_loss, g_stats), g_grads = jax.value_and_grad(objective, has_aux=True)(state.g.params)
    return (state.replace(g=_apply_grads(state.g, g_grads, g_stats)),
            _g_metrics(g_loss, g_grads))

  return d_update, g_update


def make_alternating_step(config: ml_collections.ConfigDict, generator: nn.Module,
                          discriminator: nn.Module) -> TrainStep:
  """A D update, then a G update on fresh noise against the updated D."""
  d_update, g_update = make_alternating_halves(config, generator, discriminator)

  def step(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    state, d_metrics = d_update(state, batch)
    state, g_metrics = g_update(state, batch)
    return state.replace(step=state.step + 1), {**g_metrics, **d_metrics}

  return step


UPDATE_RULES = {'simultaneous': make_simultaneous_step, 'alternating': make_alternating_step}


def make_step_fn(config: ml_collections.ConfigDict, generator: nn.Module,
                 discriminator: nn.Module) -> TrainStep:
  """The uncompiled step for `config.train.update_rule`."""
  if config.train.update_rule not in UPDATE_RULES:
    raise ValueError(f'Unknown config.train.update_rule={config.train.update_rule!r}; '
                     f'use one of {sorted(UPDATE_RULES)}.')
  step_fn = UPDATE_RULES[config.train.update_rule](config, generator, discriminator)
  if not config.train.g_ema_decay:
    return step_fn
  return _with_g_ema(step_fn, config.train.g_ema_decay)


def _with_g_ema(step_fn: TrainStep, decay: float) -> TrainStep:
  """The step, then G's EMA moved toward G's new parameters.

  The decay ramps up as min(decay, (1 + t) / (10 + t)) (tf.train.ExponentialMovingAverage's
  num_updates rule), so the EMA does not hold on to the random initialisation for the
  first thousands of steps.
  """

  def step(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    new_state, metrics = step_fn(state, batch)
    t = state.step.astype(jnp.float32)
    rate = jnp.minimum(decay, (1 + t) / (10 + t))
    g_ema = optax.incremental_update(new_state.g.params, state.g_ema, step_size=1 - rate)
    return new_state.replace(g_ema=g_ema), metrics

  return step


def _refusing_recompilation(fn: Callable, program_of: Callable[[Array], object], what: str):
  """`fn`, raising when jit traces it a second time for the same program.

  A recompilation mid-run means a shape, dtype or sharding changed between calls, which is
  a bug, not a cost to pay silently. `program_of(last argument)` tells which program a
  call needs (one for the step; one per shape of the indices or batches of k steps).
  """
  traced: set = set()

  def traced_once_per_program(*args):
    program, x = program_of(args[-1]), args[-1]
    if program in traced:
      raise RuntimeError(f'{what} being compiled again ({x.shape} {x.dtype}): a shape, dtype '
                         f'or sharding changed between calls.')
    traced.add(program)
    return fn(*args)

  return traced_once_per_program


def make_train_step(config: ml_collections.ConfigDict, generator: nn.Module,
                    discriminator: nn.Module, mesh: Mesh) -> TrainStep:
  """The step, jitted once: state replicated (and donated), batch split over devices.

  It raises if it is ever traced twice (`_refusing_recompilation`).
  """
  step_fn = _refusing_recompilation(make_step_fn(config, generator, discriminator),
                                    lambda batch: None, 'The train step is')
  return jax.jit(step_fn,
                 in_shardings=(replicated(mesh), batch_sharding(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)),
                 donate_argnums=0)


# (state, dataset [N, 32, 32, 3] uint8 or None, indices [k, B] or batches [k, B, 32, 32, 3])
# -> (state, metrics each stacked to [k]).
MultiStep = Callable[[GANState, Array | None, Array], tuple[GANState, Metrics]]


def make_train_steps(config: ml_collections.ConfigDict, generator: nn.Module,
                     discriminator: nn.Module, mesh: Mesh) -> MultiStep:
  """k steps in one compiled call, a `lax.scan` of the step, jitted once per k.

  The training loop calls this: `run(state, dataset, indices)` gathers each step's batch
  from the uint8 dataset kept on the device (`config.data.on_device`) inside the call;
  `run(state, None, batches)` takes batches the host gathered. One dispatch for k steps
  instead of two a step matters on a GPU, where a recap step takes ~1.3 ms and the
  host's work around it (dispatch, the index copy, the gather's call) no less. Each
  scan iteration is the step of `make_step_fn`, so k calls of one step and one call of
  k steps compute the same (tested). Like `make_train_step`, it raises if a call of a k
  it has compiled before is traced again.
  """
  step_fn = make_step_fn(config, generator, discriminator)

  def run(state: GANState, dataset: Array | None, xs: Array) -> tuple[GANState, Metrics]:
    def one_step(state: GANState, x: Array) -> tuple[GANState, Metrics]:
      batch = x if dataset is None else dataset[x]
      return step_fn(state, jax.lax.with_sharding_constraint(batch, batch_sharding(mesh)))

    if len(xs) == 1:  # No loop around a single step: the program make_train_step compiles.
      state, metrics = one_step(state, xs[0])
      return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(one_step, state, xs)

  return jax.jit(_refusing_recompilation(run, jnp.shape, 'The train steps are'),
                 in_shardings=(replicated(mesh), replicated(mesh),
                               NamedSharding(mesh, P(None, 'data'))),
                 out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)
