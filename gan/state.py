"""Training state: one optax TrainState per network, and the GAN state holding both.

The GAN state is a pytree, so it is jitted, sharded, donated and checkpointed as a whole.
"""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from gan import models


class NetState(train_state.TrainState):
  """Parameters, optimizer state and update count of one network.

  Attributes:
    batch_stats: BatchNorm running means and variances (Keras' "non-trainable"
      weights); an empty dict for a network without BatchNorm.
  """
  batch_stats: Any


@flax.struct.dataclass
class GANState:
  """Everything a run needs to continue bit-exactly.

  Attributes:
    g: generator state.
    d: discriminator state.
    step: number of train steps done (the global step; one step updates both nets).
    key: the run's base PRNG key (uint32[2]); step t draws from fold_in(key, t), so a
      resumed run draws the same numbers as an uninterrupted one.
    g_ema: exponential moving average of G's parameters (`config.train.g_ema_decay`),
      or None when the run keeps none. Samples and FID use it when it is there.
  """
  g: NetState
  d: NetState
  step: jax.Array
  key: jax.Array
  g_ema: Any = None


def sampling_variables(state: GANState) -> dict:
  """G's variables to sample with: the EMA parameters when the run keeps them.

  BatchNorm's running statistics are the live G's (as StyleGAN2-ADA copies G's buffers
  into G_ema): they average activations, which the EMA parameters change only slowly.
  """
  params = state.g.params if state.g_ema is None else state.g_ema
  return {'params': params, 'batch_stats': state.g.batch_stats}


def rng_streams(seed: int) -> dict[str, jax.Array]:
  """The run's independent PRNG keys, all from `config.seed`.

  'init': parameter initialisation; 'train': per-step noise and dropout (stored in the
  state); 'samples': the fixed noise of the sample grids; 'eval': the noise of FID/KID
  samples. Data order uses numpy seeded by (seed, epoch), see gan.data.epoch_permutation.
  """
  root = jax.random.PRNGKey(seed)
  init, train, samples = jax.random.split(root, 3)
  # Folded in rather than split off, so adding it left the other streams unchanged.
  return {'init': init, 'train': train, 'samples': samples, 'eval': jax.random.fold_in(root, 1)}


def make_optimizer(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
  if optim.name == 'adam':
    return optax.adam(optim.learning_rate, b1=optim.b1, b2=optim.b2, eps=optim.eps)
  raise ValueError(f"Unknown optimizer {optim.name!r}; use 'adam'.")


def create_state(config: ml_collections.ConfigDict, generator: nn.Module,
                 discriminator: nn.Module) -> GANState:
  """Initial state from `config.seed`; pure, so it can run under `jax.jit`."""
  streams = rng_streams(config.seed)
  g_key, d_key = jax.random.split(streams['init'])
  batch = 2  # BatchNorm needs a batch axis; parameter shapes do not depend on it.
  z = jnp.zeros((batch, config.model.latent_dim), jnp.float32)
  g_vars = generator.init(g_key, z, train=False)
  images = jnp.zeros((batch, *models.image_shape(config)), jnp.float32)
  d_vars = discriminator.init(d_key, images, train=False)

  def net_state(module, variables, optim):
    net = NetState.create(apply_fn=module.apply, params=variables['params'],
                          tx=make_optimizer(optim),
                          batch_stats=variables.get('batch_stats', {}))
    # create() starts from a Python 0, a weakly typed int32 that a restored checkpoint
    # would not reproduce: the step would then compile twice.
    return net.replace(step=jnp.zeros((), jnp.int32))

  return GANState(g=net_state(generator, g_vars, config.optim.G),
                  d=net_state(discriminator, d_vars, config.optim.D),
                  step=jnp.zeros((), jnp.int32), key=streams['train'],
                  # A copy: the state is donated, and one buffer donated twice crashes XLA.
                  g_ema=(jax.tree.map(jnp.copy, g_vars['params']) if config.train.g_ema_decay
                         else None))
