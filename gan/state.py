"""Training state: one optax TrainState per network, and the GAN state holding both.

The GAN state is a pytree, so it is jitted, sharded, donated and checkpointed as a whole.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from gan import models, optim, schedule, streams
from gan.networks import Networks


class NetState(train_state.TrainState):
  """Parameters, optimizer state and update count (`step`) of one network.

  Attributes:
    batch_stats: BatchNorm running means and variances (Keras' "non-trainable"
      weights); an empty dict for a network without BatchNorm.
    spectral_norm: spectral norm's power-iteration vectors and singular-value estimates,
      per normalised layer; an empty dict for a network without spectral norm.
  """
  batch_stats: Any
  spectral_norm: Any

  @property
  def collections(self) -> dict:
    """The network's state collections, as `Networks`' train-mode calls take them."""
    return {name: getattr(self, name) for name in models.STATE_COLLECTIONS}


@flax.struct.dataclass
class GANState:
  """Everything a run needs to continue bit-exactly.

  Attributes:
    g: generator state; `g.step` counts G's updates.
    d: discriminator state; `d.step` counts D's updates (`train.n_dis` a train step).
    step: train steps done, the global step (one G update and its D updates).
    images_shown: real images shown to D so far (kimg = images_shown / 1000).
    key: the run's base PRNG key (uint32[2]); step t draws from fold_in(key, t)
      (`gan.streams`), so a resumed run draws the same numbers as an uninterrupted one.
    g_ema: exponential moving average of G's parameters (`train.g_ema_decay` or
      `train.g_ema_half_life_kimg`), or None when the run keeps none. Samples and
      metrics use it when it is there (`gan.sampling`).
    g_ema_collections: G's state collections (BatchNorm's running statistics, spectral
      norm's vectors) averaged at the same rate as `g_ema`, as BigGAN-PyTorch's and
      StudioGAN's EMAs average G's buffers with its weights: the running statistics of
      the averaged network, not of the live one. None when the run keeps no EMA.
  """
  g: NetState
  d: NetState
  step: jax.Array
  images_shown: jax.Array
  key: jax.Array
  g_ema: Any = None
  g_ema_collections: Any = None

  @property
  def kimg(self) -> jax.Array:
    return self.images_shown / 1000


def keeps_g_ema(config: ml_collections.ConfigDict) -> bool:
  return bool(config.train.g_ema_decay or config.train.g_ema_half_life_kimg)


def ema_decay(config: ml_collections.ConfigDict) -> float:
  """The EMA of G's decay per step: `g_ema_decay`, or from `g_ema_half_life_kimg` the
  decay that halves an old parameter's weight in that many kimg (StyleGAN2-ADA's ema_kimg
  rule, 0.5 ** (images a step / images of a half-life)); 0 for none."""
  if config.train.g_ema_half_life_kimg:
    half_life = 1000 * config.train.g_ema_half_life_kimg
    return 0.5 ** (schedule.images_per_step(config) / half_life)
  return config.train.g_ema_decay


def ema_rate(config: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """The share of the old average kept by the EMA update after train step `step`.

  With `train.g_ema_start_step` 0 the decay ramps up as min(decay, (1 + t) / (10 + t))
  (tf.train.ExponentialMovingAverage's num_updates rule), so the EMA does not hold on to
  the random initialisation for the first thousands of steps. With a start step S > 0 the
  EMA copies G until step S, then averages at the full decay (BigGAN-PyTorch's
  `ema_start`).
  """
  decay = ema_decay(config)
  t = step.astype(jnp.float32)
  start = config.train.g_ema_start_step
  if start:
    return jnp.where(t < start, 0.0, decay)
  return jnp.minimum(decay, (1 + t) / (10 + t))


def create_state(config: ml_collections.ConfigDict, networks: Networks,
                 total_steps: int = 0) -> GANState:
  """Initial state from `config.seed`; pure, so it can run under `jax.jit`.

  `total_steps`, the run's train steps (default: as the config's data split makes them),
  sets how long the learning-rate schedules run: G updates once a step, D `n_dis` times.
  """
  keys = streams.run_keys(config.seed)
  g_vars, d_vars = networks.init(keys['init'])
  total_steps = total_steps or schedule.total_steps(config)
  updates = {'G': total_steps, 'D': total_steps * config.train.n_dis}

  def net_state(module, variables, net):
    net_state = NetState.create(apply_fn=module.apply, params=variables['params'],
                                tx=optim.make_optimizer(config.optim[net], updates[net]),
                                batch_stats=variables.get('batch_stats', {}),
                                spectral_norm=variables.get('spectral_norm', {}))
    # create() starts from a Python 0, a weakly typed int32 that a restored checkpoint
    # would not reproduce: the step would then compile twice.
    return net_state.replace(step=jnp.zeros((), jnp.int32))

  # Copies: the state is donated, and one buffer donated twice crashes XLA.
  copy = lambda tree: jax.tree.map(jnp.copy, tree) if keeps_g_ema(config) else None
  return GANState(g=net_state(networks.generator, g_vars, 'G'),
                  d=net_state(networks.discriminator, d_vars, 'D'),
                  step=jnp.zeros((), jnp.int32), images_shown=jnp.zeros((), jnp.int32),
                  key=keys['train'],
                  g_ema=copy(g_vars['params']),
                  g_ema_collections=copy({name: g_vars.get(name, {})
                                          for name in models.STATE_COLLECTIONS}))
