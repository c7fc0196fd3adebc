"""G as sampled: its variables (the EMA's when the run keeps one, with statistics that
belong to them) and the call that makes images. The grids of the training loop, the
metrics (`gan.evaluate`), `gan.sample` and the notebook all sample through `Sampling`.

How G's BatchNorm is set when sampling (`config.eval.g_statistics`):

  'standing'  BigGAN's standing statistics (BigGAN-PyTorch `utils.accumulate_standing_stats`
              with its `myBN`; StudioGAN's momentum-0.1 variant is not this): G runs in
              train mode over `eval.standing_batches` batches of
              `eval.standing_batch_size` fresh latents (and uniform labels), each
              BatchNorm's batch means and variances are averaged over them, and G
              samples in inference mode with those averages.
              They are statistics of exactly the parameters sampled, whatever the EMA
              or the running averages' momentum, and the same for a seed.
  'running'   the running averages kept in training: the live G's for G, the EMA's own
              (averaged with its parameters, `GANState.g_ema_collections`) for the EMA.
              Keras' `training=False`, the seed's sampling.
  'batch'     train mode on each batch sampled: every batch normalised with its own
              statistics, so a sample depends on the others of its batch.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan import models, parallel, streams
from gan.networks import Networks
from gan.state import GANState

Array = jax.Array

STATISTICS = ('standing', 'running', 'batch')
# Where the standing statistics' accumulation leaves each BatchNorm's batch moments.
_MOMENTS = 'batch_moments'


def trained_variables(state: GANState, ema: bool = True) -> dict:
  """G's variables as training left them: the EMA's parameters and its averaged state
  collections when the run keeps an EMA (and `ema`), else the live G's."""
  if state.g_ema is None or not ema:
    return {'params': state.g.params, **state.g.collections}
  return {'params': state.g_ema, **state.g_ema_collections}


def _record_batch_moments(next_fun, args, kwargs, context):
  """A flax method interceptor: each BatchNorm called in train mode sows the mean and
  variance of its input over the batch (and positions) as flax's BatchNorm computes them
  (float32, E[x^2] - E[x]^2 clipped at 0), then runs as usual."""
  module = context.module
  if isinstance(module, nn.BatchNorm) and context.method_name == '__call__':
    x = jnp.asarray(args[0], jnp.float32)
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    variance = jnp.maximum(0.0, jnp.mean(jnp.square(x), axes) - jnp.square(mean))
    module.sow(_MOMENTS, 'mean', mean)
    module.sow(_MOMENTS, 'var', variance)
  return next_fun(*args, **kwargs)


def _moments_as_statistics(moments: dict) -> dict:
  """The sown {..., 'BatchNorm_0': {'mean': (m,), 'var': (v,)}} as batch_stats' layout."""
  return jax.tree.map(lambda sown: sown[0], moments,
                      is_leaf=lambda node: isinstance(node, tuple))


class Sampling:
  """How a run's G is sampled (`config.eval`): its variables and its call.

  `variables(state)` gives G's variables as sampled, `generate(variables, z, labels)`
  the images [N, H, W, C] in [-1, 1] (pure: jit it, or use `sampler`/`sharded_sampler`).
  """

  def __init__(self, config: ml_collections.ConfigDict, networks: Networks, ema: bool = True):
    self.mode = config.eval.g_statistics
    self.ema = ema  # False: the live G even when the run keeps an EMA (what the EMA buys).
    if self.mode not in STATISTICS:
      raise ValueError(f'Unknown config.eval.g_statistics={self.mode!r}; use one of '
                       f'{list(STATISTICS)}.')
    self.networks = networks
    self.standing_batches = config.eval.standing_batches
    self.standing_batch_size = config.eval.standing_batch_size or config.train.batch_size
    self._key = streams.run_keys(config.seed)['standing']
    self._standing = jax.jit(self.standing_statistics, static_argnums=(3, 4))

  def standing_statistics(self, params, collections: dict, key: Array, batches: int,
                          batch_size: int) -> dict:
    """BatchNorm statistics of G with `params`: the mean over `batches` train-mode passes
    of `batch_size` latents (and uniform labels) from `key` of each BatchNorm's batch mean
    and variance, in the layout of `batch_stats`."""

    def one_batch(total, index):
      batch_key = jax.random.fold_in(key, index)
      z = self.networks.latents(streams.named(batch_key, 'z'), batch_size)
      labels = self.networks.labels(streams.named(batch_key, 'labels'), batch_size)
      with nn.intercept_methods(_record_batch_moments):
        _, moments = self.networks.generator.apply(
            {'params': params, **collections}, z, labels, train=True,
            mutable=[*models.STATE_COLLECTIONS, _MOMENTS])
      moments = _moments_as_statistics(moments[_MOMENTS])
      return jax.tree.map(jnp.add, total, moments), None

    zeros = jax.tree.map(jnp.zeros_like, collections[models.BATCH_STATS])
    total, _ = jax.lax.scan(one_batch, zeros, jnp.arange(batches))
    return jax.tree.map(lambda s: s / batches, total)

  def variables(self, state: GANState) -> dict:
    """G's variables as sampled: `trained_variables`, their BatchNorm statistics replaced
    by standing ones in 'standing' mode."""
    variables = trained_variables(state, self.ema)
    if self.mode != 'standing' or not variables.get(models.BATCH_STATS):
      return variables
    collections = {name: variables[name] for name in models.STATE_COLLECTIONS}
    standing = self._standing(variables['params'], collections, self._key,
                              self.standing_batches, self.standing_batch_size)
    return {**variables, models.BATCH_STATS: standing}

  def generate(self, variables: dict, z: Array, labels: Array | None) -> Array:
    """Images [N, H, W, C] in [-1, 1] of G with `variables` (from `variables`)."""
    if self.mode == 'batch':
      collections = {name: variables[name] for name in models.STATE_COLLECTIONS}
      images, _ = self.networks.generate_train(variables['params'], collections, z, labels)
      return images
    return self.networks.generate(variables, z, labels)

  def sampler(self):
    """Jitted (G's variables, z, labels) -> images."""
    return jax.jit(self.generate)

  def sharded_sampler(self, mesh=None) -> parallel.OverMesh:
    """(G's variables, z, labels) -> numpy images, each batch split over every device of
    `mesh` (default: all of them): evaluation's and gan.sample's."""
    return parallel.OverMesh(self.generate, mesh)


def diversity(images: np.ndarray) -> float:
  """The mean distance between two different images of `images` [N, H, W, C] (pixels in
  [-1, 1], per-pixel root mean square): 0 for copies of one picture; about 0.5 for CIFAR-10
  images drawn at random."""
  flat = np.asarray(images, np.float64).reshape(len(images), -1)
  squared = np.sum(flat ** 2, axis=1)
  distances = squared[:, None] + squared[None, :] - 2 * flat @ flat.T
  rms = np.sqrt(np.maximum(distances, 0) / flat.shape[1])
  n = len(images)
  return float(rms.sum() / (n * (n - 1)))
