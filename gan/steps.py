"""The train step: a pure function `(GANState, uint8 batch) -> (GANState, metrics)`.

`make_train_step` closes over the static settings once and returns the step compiled
with `jax.jit`, its batch sharded over the mesh's 'data' axis and its state replicated,
the input state donated. Under jit, BatchNorm statistics are over the whole global batch,
so a sharded step computes what a one-device step computes.
"""

from collections.abc import Callable

import chex
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


def _variables(net: NetState, params) -> dict:
  return {'params': params, 'batch_stats': net.batch_stats}


def _apply_grads(net: NetState, grads, batch_stats) -> NetState:
  return net.apply_gradients(grads=grads, batch_stats=batch_stats)


def make_step_fn(config: ml_collections.ConfigDict, generator: nn.Module,
                 discriminator: nn.Module) -> TrainStep:
  """The uncompiled step for `config.train.update_rule` ('simultaneous' or 'alternating')."""
  g_loss_fn, d_loss_fn = losses.LOSSES[config.loss.name]
  latent_dim = config.model.latent_dim

  def generate(g: NetState, params, z):
    """G in train mode: (fake images, G's updated batch_stats)."""
    fake, updates = generator.apply(_variables(g, params), z, train=True,
                                    mutable=['batch_stats'])
    return fake, updates['batch_stats']

  def discriminate(d: NetState, params, batch_stats, images, key):
    """D in train mode: (logits, D's updated batch_stats)."""
    logits, updates = discriminator.apply(
        {'params': params, 'batch_stats': batch_stats}, images, train=True,
        mutable=['batch_stats'], rngs={'dropout': key})
    return logits, updates['batch_stats']

  def d_forward(d: NetState, params, real, fake, key):
    """Real then fake through D, its statistics updated in that order (as Keras does)."""
    real_key, fake_key = jax.random.split(key)
    real_logits, stats = discriminate(d, params, d.batch_stats, real, real_key)
    fake_logits, stats = discriminate(d, params, stats, fake, fake_key)
    return real_logits, fake_logits, stats

  def metrics_of(g_loss, d_loss, real_logits, fake_logits, g_grads, d_grads) -> Metrics:
    return {
        'G/loss': g_loss,
        'D/loss': d_loss,
        'D/acc_real': losses.accuracy_real(real_logits),
        'D/acc_fake': losses.accuracy_fake(fake_logits),
        'G/grad_norm': optax.global_norm(g_grads),
        'D/grad_norm': optax.global_norm(d_grads),
    }

  def simultaneous_step(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    """The seed's step: one forward pass, G's and D's gradients from their own losses."""
    real = data.to_float(batch)
    z_key, d_key = jax.random.split(jax.random.fold_in(state.key, state.step))
    z = jax.random.normal(z_key, (real.shape[0], latent_dim))

    def forward(g_params, d_params):
      fake, g_stats = generate(state.g, g_params, z)
      real_logits, fake_logits, d_stats = d_forward(state.d, d_params, real, fake, d_key)
      aux = (real_logits, fake_logits, g_stats, d_stats)
      return (g_loss_fn(fake_logits), d_loss_fn(real_logits, fake_logits)), aux

    (g_loss, d_loss), pullback, aux = jax.vjp(forward, state.g.params, state.d.params,
                                              has_aux=True)
    real_logits, fake_logits, g_stats, d_stats = aux
    one, zero = jnp.ones_like(g_loss), jnp.zeros_like(g_loss)
    g_grads, _ = pullback((one, zero))  # XLA drops the halves not used.
    _, d_grads = pullback((zero, one))
    new_state = state.replace(g=_apply_grads(state.g, g_grads, g_stats),
                              d=_apply_grads(state.d, d_grads, d_stats),
                              step=state.step + 1)
    return new_state, metrics_of(g_loss, d_loss, real_logits, fake_logits, g_grads, d_grads)

  def alternating_step(state: GANState, batch: Array) -> tuple[GANState, Metrics]:
    """A D step on G(z1), then a G step on fresh G(z2) against the updated D.

    Each half changes only its own network, BatchNorm statistics included: the other
    network runs in train mode (batch statistics) but its running averages are kept.
    """
    real = data.to_float(batch)
    z1_key, z2_key, d_key, g_key = jax.random.split(
        jax.random.fold_in(state.key, state.step), 4)
    batch_size = real.shape[0]
    fake, _ = generate(state.g, state.g.params, jax.random.normal(z1_key, (batch_size, latent_dim)))
    fake = jax.lax.stop_gradient(fake)

    def d_objective(d_params):
      real_logits, fake_logits, d_stats = d_forward(state.d, d_params, real, fake, d_key)
      return d_loss_fn(real_logits, fake_logits), (real_logits, fake_logits, d_stats)

    (d_loss, (real_logits, fake_logits, d_stats)), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(state.d.params)
    d = _apply_grads(state.d, d_grads, d_stats)

    z2 = jax.random.normal(z2_key, (batch_size, latent_dim))

    def g_objective(g_params):
      fake, g_stats = generate(state.g, g_params, z2)
      fake_logits, _ = discriminate(d, d.params, d.batch_stats, fake, g_key)
      return g_loss_fn(fake_logits), g_stats

    (g_loss, g_stats), g_grads = jax.value_and_grad(g_objective, has_aux=True)(state.g.params)
    g = _apply_grads(state.g, g_grads, g_stats)
    new_state = state.replace(g=g, d=d, step=state.step + 1)
    return new_state, metrics_of(g_loss, d_loss, real_logits, fake_logits, g_grads, d_grads)

  steps = {'simultaneous': simultaneous_step, 'alternating': alternating_step}
  if config.train.update_rule not in steps:
    raise ValueError(f'Unknown config.train.update_rule={config.train.update_rule!r}; '
                     f'use one of {sorted(steps)}.')
  return steps[config.train.update_rule]


def make_train_step(config: ml_collections.ConfigDict, generator: nn.Module,
                    discriminator: nn.Module, mesh: Mesh) -> TrainStep:
  """The step, jitted once: state replicated (and donated), batch split over devices.

  It raises if it is ever traced twice: a recompilation mid-run means a shape, dtype
  or sharding changed between steps, which is a bug, not a cost to pay silently.
  """
  step_fn = chex.assert_max_traces(make_step_fn(config, generator, discriminator), n=1)
  return jax.jit(step_fn,
                 in_shardings=(replicated(mesh), batch_sharding(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)),
                 donate_argnums=0)
