"""Generator and discriminator, built from `config.model`.

Both are pure Flax linen modules: `G.apply(variables, z, train=...)` and
`D.apply(variables, images, train=...)`. BatchNorm statistics live in the `batch_stats`
collection (updated when `train=True` and the collection is mutable); dropout draws from
the `dropout` rng stream. Initialisation follows Keras: Glorot-uniform kernels, zero
biases, BatchNorm scale 1 and offset 0.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan import layers

Array = jax.Array


def activation_fn(name: str, leaky_slope: float) -> Callable[[Array], Array]:
  if name == 'relu':
    return nn.relu
  if name == 'leaky_relu':
    return functools.partial(nn.leaky_relu, negative_slope=leaky_slope)
  raise ValueError(f"Unknown activation {name!r}; use 'relu' or 'leaky_relu'.")


# The rewrites of each Flax layer, by config name ('flax' is the Flax layer itself); each
# computes the Flax layer's function with its parameters (tests/test_layers.py).
CONV_TRANSPOSE_IMPLS = {'subpixel': layers.SubPixelConvTranspose}
STRIDED_CONV_IMPLS = {'space_to_depth': layers.SpaceToDepthConv,
                      'subpixel_grad': layers.SubPixelGradConv}


def _square_conv_layer(impl: str, rewrites: dict, flax_layer, setting: str):
  """A constructor (features, kernel_size, strides, **kw) of a SAME square-kernel layer:
  one of the rewrites, or the Flax layer with Keras' initialiser."""
  if impl in rewrites:
    return rewrites[impl]
  if impl == 'flax':
    def flax_conv(features, kernel_size, strides, winograd=None, **kw):
      del winograd  # XLA picks the Flax layer's algorithm.
      return flax_layer(features, (kernel_size, kernel_size), (strides, strides),
                        padding='SAME', kernel_init=layers.glorot_uniform, **kw)
    return flax_conv
  raise ValueError(f'Unknown {setting} {impl!r}; use one of {sorted([*rewrites, "flax"])}.')


def conv_transpose_layer(impl: str) -> Callable[..., nn.Module]:
  return _square_conv_layer(impl, CONV_TRANSPOSE_IMPLS, nn.ConvTranspose,
                            'model.conv_transpose_impl')


def strided_conv_layer(impl: str) -> Callable[..., nn.Module]:
  return _square_conv_layer(impl, STRIDED_CONV_IMPLS, nn.Conv, 'model.strided_conv_impl')


class DCGANGenerator(nn.Module):
  """z [N, latent] -> Dense -> BN -> act -> [N, b, b, C] -> (ConvT/2 -> BN -> act)* -> ConvT/2 -> tanh."""
  base_size: int
  base_channels: int
  channels: tuple[int, ...]
  out_channels: int
  kernel_size: int
  activation: str
  leaky_slope: float
  bn_momentum: float
  bn_epsilon: float
  conv_transpose_impl: str
  winograd: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array, train: bool) -> Array:
    act = activation_fn(self.activation, self.leaky_slope)
    conv_transpose = conv_transpose_layer(self.conv_transpose_impl)
    batch_norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=self.bn_epsilon, dtype=self.dtype)

    x = nn.Dense(self.base_size ** 2 * self.base_channels, use_bias=False,
                 kernel_init=layers.glorot_uniform, dtype=self.dtype)(z)
    x = act(batch_norm()(x))
    x = x.reshape(z.shape[0], self.base_size, self.base_size, self.base_channels)
    # Layers are named by role, not by implementation, so 'subpixel' and 'flax' runs
    # share one parameter tree (and checkpoints).
    for i, features in enumerate(self.channels):
      x = conv_transpose(features, self.kernel_size, 2, use_bias=False, dtype=self.dtype,
                         winograd=self.winograd, name=f'ConvTranspose_{i}')(x)
      x = act(batch_norm()(x))
    x = conv_transpose(self.out_channels, self.kernel_size, 2, use_bias=False,
                       dtype=self.dtype, winograd=self.winograd,
                       name=f'ConvTranspose_{len(self.channels)}')(x)
    # The image leaves G in float32 whatever the compute dtype: D and the sample grids
    # expect [-1, 1] float32.
    return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
  """images [N, H, W, 3] in [-1, 1] -> (Conv/2 -> [BN] -> act -> [Dropout])* -> Dense(1) logit [N]."""
  channels: tuple[int, ...]
  batch_norm: tuple[bool, ...]
  kernel_size: int
  activation: str
  leaky_slope: float
  dropout: float
  bn_momentum: float
  bn_epsilon: float
  strided_conv_impl: str
  winograd: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array, train: bool) -> Array:
    act = activation_fn(self.activation, self.leaky_slope)
    conv = strided_conv_layer(self.strided_conv_impl)
    x = images
    for i, (features, use_bn) in enumerate(zip(self.channels, self.batch_norm, strict=True)):
      x = conv(features, self.kernel_size, 2, dtype=self.dtype, winograd=self.winograd,
               name=f'Conv_{i}')(x)
      if use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         epsilon=self.bn_epsilon, dtype=self.dtype)(x)
      x = act(x)
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = x.reshape(x.shape[0], -1)
    logits = nn.Dense(1, kernel_init=layers.glorot_uniform, dtype=self.dtype)(x)
    return logits[:, 0].astype(jnp.float32)


def build_dcgan(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  model = config.model
  dtype = jnp.dtype(model.compute_dtype)
  generator = DCGANGenerator(
      base_size=model.G.base_size, base_channels=model.G.base_channels,
      channels=tuple(model.G.channels), out_channels=model.G.out_channels,
      kernel_size=model.G.kernel_size, activation=model.G.activation,
      leaky_slope=model.G.leaky_slope, bn_momentum=model.bn_momentum,
      bn_epsilon=model.bn_epsilon, conv_transpose_impl=model.conv_transpose_impl,
      winograd=model.winograd, dtype=dtype)
  discriminator = DCGANDiscriminator(
      channels=tuple(model.D.channels), batch_norm=tuple(model.D.batch_norm),
      kernel_size=model.D.kernel_size, activation=model.D.activation,
      leaky_slope=model.D.leaky_slope, dropout=model.D.dropout,
      bn_momentum=model.bn_momentum, bn_epsilon=model.bn_epsilon,
      strided_conv_impl=model.strided_conv_impl, winograd=model.winograd, dtype=dtype)
  return generator, discriminator


# Architecture families by `config.model.name`; the seed's two designs are both 'dcgan'
# with different settings. A new design registers its builder here.
DESIGNS: dict[str, Callable[[ml_collections.ConfigDict], tuple[nn.Module, nn.Module]]] = {
    'dcgan': build_dcgan,
}


def build_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for `config.model.name`."""
  if config.model.name not in DESIGNS:
    raise ValueError(f'Unknown design config.model.name={config.model.name!r}; '
                     f'known: {sorted(DESIGNS)}.')
  return DESIGNS[config.model.name](config)


def inference_generator(generator: nn.Module):
  """Jitted (G's variables, z [N, latent]) -> images [N, 32, 32, 3] in [-1, 1], with
  BatchNorm's running statistics (inference mode), as the seed sampled its grids.

  The variables are `gan.state.sampling_variables(state)`: G's EMA when the run keeps one.
  """
  return jax.jit(lambda variables, z: generator.apply(variables, z, train=False))


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """[H, W, C] of G's output: each ConvTranspose doubles the base size."""
  size = config.model.G.base_size * 2 ** (len(config.model.G.channels) + 1)
  return size, size, config.model.G.out_channels
