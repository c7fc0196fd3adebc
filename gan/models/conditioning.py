"""Class conditioning: conditional BatchNorm for G; D's class term, the projection or an
AC-GAN head.

A family takes `num_classes` (0 for an unconditional model) and builds its normalisation
through `batch_norm` and its class term through `class_term`, so an unconditional model's
parameters (and checkpoints) stay those of the plain design.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan.models import registry
from gan.models.layers import apply_layer

Array = jax.Array


class ConditionalBatchNorm(nn.Module):
  """BatchNorm whose gain and bias depend on the class (de Vries et al. 2017; SN-GAN
  projection's categorical conditional BN): normalise with no affine of its own, then
  x * gain[y] + bias[y], the gains starting at 1 and the biases at 0, so that it starts as
  plain BatchNorm.

  Given `condition` [N, d] instead (BigGAN, Brock et al. 2019: a shared class embedding
  joined to a chunk of z), gain = 1 + W_g c and bias = W_b c, linear maps spectrally
  normalised with `spectral_norm`, in place of the per-class tables.

  `table_scale` > 0 starts the tables at 1 + N(0, scale^2) and N(0, scale^2) instead
  (BigGAN-PyTorch's N02 initialisation of its gain = 1 + embed(y) and bias = embed(y)).
  """
  num_classes: int
  use_running_average: bool
  momentum: float = 0.99
  epsilon: float = 1e-5
  spectral_norm: bool = False
  kernel_init: Callable = nn.initializers.xavier_uniform()
  table_scale: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, labels: Array, condition: Array | None = None) -> Array:
    features = x.shape[-1]
    x = nn.BatchNorm(use_running_average=self.use_running_average, momentum=self.momentum,
                     epsilon=self.epsilon, use_scale=False, use_bias=False, dtype=self.dtype,
                     name='BatchNorm')(x)
    if condition is None:
      spread = nn.initializers.normal(self.table_scale)
      ones = (nn.initializers.ones if not self.table_scale else
              lambda key, shape, dtype=jnp.float32: 1 + spread(key, shape, dtype))
      zeros = spread if self.table_scale else nn.initializers.zeros
      gain = nn.Embed(self.num_classes, features, embedding_init=ones, name='gain')(labels)
      bias = nn.Embed(self.num_classes, features, embedding_init=zeros, name='bias')(labels)
    else:
      train = not self.use_running_average
      linear = lambda name: nn.Dense(features, use_bias=False, kernel_init=self.kernel_init,
                                     name=name)
      gain = 1 + apply_layer(linear('gain'), condition, self.spectral_norm, train)
      bias = apply_layer(linear('bias'), condition, self.spectral_norm, train)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)  # Broadcast over positions.
    return x * gain.reshape(shape).astype(x.dtype) + bias.reshape(shape).astype(x.dtype)


def batch_norm(num_classes: int, train: bool, momentum: float, epsilon: float, dtype,
               spectral_norm: bool = False, kernel_init: Callable | None = None,
               table_scale: float = 0.0) -> Callable[..., Array]:
  """G's normalisation: `norm(x, labels, condition=None, name=None)`, plain BatchNorm for
  an unconditional model (`num_classes` 0; the labels are None and unused), else
  `ConditionalBatchNorm`. Call it from a compact `__call__` (it creates the layer)."""

  def norm(x: Array, labels: Array | None, condition: Array | None = None,
           name: str | None = None) -> Array:
    if not num_classes:
      return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon,
                          dtype=dtype, name=name)(x)
    if labels is None:
      raise ValueError('A conditional generator was called without labels.')
    extra = {} if kernel_init is None else {'kernel_init': kernel_init}
    return ConditionalBatchNorm(num_classes, use_running_average=not train, momentum=momentum,
                                epsilon=epsilon, spectral_norm=spectral_norm,
                                table_scale=table_scale, dtype=dtype, name=name,
                                **extra)(x, labels, condition)

  return norm


def class_term(module: nn.Module, head: str, features: Array, labels: Array,
               num_classes: int, spectral_norm: bool, train: bool, dtype=jnp.float32,
               embedding_init: Callable | None = None) -> Array:
  """What a conditional D adds to its logit from its features h [N, F] (call it from the
  compact `__call__` of `module`, D itself):

  - 'projection': <embed(y), h> (`projection`);
  - 'acgan': nothing; an auxiliary classifier Dense(classes)(h) whose logits [N, classes]
    D sows as `intermediates/class_logits`, for the AC-GAN loss (Odena et al. 2017).
  """
  if head == 'projection':
    return projection(features, labels, num_classes, spectral_norm, train, dtype, embedding_init)
  if head != 'acgan':
    raise ValueError(f'Unknown class head {head!r}; use one of {list(registry.CLASS_HEADS)}.')
  classifier = nn.Dense(num_classes, kernel_init=nn.initializers.xavier_uniform(),
                        dtype=dtype, name='ClassHead')
  class_logits = apply_layer(classifier, features, spectral_norm, train).astype(jnp.float32)
  module.sow(registry.INTERMEDIATES, registry.CLASS_LOGITS, class_logits)
  return jnp.zeros(features.shape[0], jnp.float32)


def projection(features: Array, labels: Array, num_classes: int, spectral_norm: bool,
               train: bool, dtype=jnp.float32, embedding_init: Callable | None = None) -> Array:
  """<embed(y), h> [N]: the projection discriminator's class term (Miyato & Koyama 2018),
  added to D's unconditional logit linear(h). The embedding starts Xavier-uniform, as in
  their code (or as `embedding_init`), and is spectrally normalised with D's layers. Call
  it from a compact `__call__` (it creates the layer `ClassEmbed`)."""
  if labels is None:
    raise ValueError('A conditional discriminator was called without labels.')
  embed = nn.Embed(num_classes, features.shape[-1],
                   embedding_init=embedding_init or nn.initializers.xavier_uniform(),
                   dtype=dtype, name='ClassEmbed')
  embedded = apply_layer(embed, labels, spectral_norm, train)
  return jnp.sum(embedded.astype(jnp.float32) * features.astype(jnp.float32), axis=-1)
