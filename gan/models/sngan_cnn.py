"""The SN-GAN paper's "standard CNN" (Miyato et al. 2018, Table 3 (a) and (b)) for 32x32.

G: z -> Dense(4*4*512) -> BN -> ReLU -> [4, 4, 512] -> (ConvT 4x4/2 -> BN -> ReLU) x 3
   (256, 128, 64) -> Conv 3x3 (3) -> tanh.
D: images -> Conv 3x3 (64) -> Conv 4x4/2 (64) -> Conv 3x3 (128) -> Conv 4x4/2 (128)
   -> Conv 3x3 (256) -> Conv 4x4/2 (256) -> Conv 3x3 (512), each followed by
   LeakyReLU(0.1) -> flatten -> Dense(1) logit; spectral norm on every layer.

The paper's D has no BatchNorm (spectral norm is its only normalisation); G has no
spectral norm by default (`G.spectral_norm`). Kernels start as `weight_init` says:
Glorot-uniform as in the DCGAN family, or N(0, 0.02) as chainer-gan-lib's and compare_gan's
SNDCGAN; biases zero. The layers run as the DCGAN family's: the strided ones by
`conv_transpose_impl` and `strided_conv_impl`, the 3x3 stride-1 ones as `gan.ops`'
SpaceToDepthConv at stride 1 (XLA's convolution; on the CPU, Winograd's F(4x4, 3x3) for
wide inputs). Unconditional: `labels` is taken by the contract and ignored.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan import ops
from gan.models import dcgan, layers, registry

Array = jax.Array


# `weight_init`: the initialiser of every kernel.
INITS = {'glorot': ops.glorot_uniform, 'normal02': nn.initializers.normal(0.02)}


def conv3x3(features: int, name: str, dtype, winograd: bool,
            kernel_init=ops.glorot_uniform) -> nn.Module:
  """A SAME 3x3 stride-1 convolution with bias (the Flax layer's parameters)."""
  return ops.SpaceToDepthConv(features, 3, 1, dtype=dtype, winograd=winograd,
                              kernel_init=kernel_init, name=name)


class SNGANCNNGenerator(nn.Module):
  """z [N, latent] -> images [N, 32, 32, C] in [-1, 1]."""
  base_channels: int
  channels: tuple[int, ...]
  out_channels: int
  bn_momentum: float
  bn_epsilon: float
  conv_transpose_impl: str
  spectral_norm: bool = False
  winograd: bool = True
  weight_init: str = 'glorot'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array, labels: Array | None, train: bool) -> Array:
    del labels
    apply = functools.partial(layers.apply_layer, spectral_norm=self.spectral_norm, train=train)
    batch_norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=self.bn_epsilon, dtype=self.dtype)
    conv_transpose = dcgan.conv_transpose_layer(self.conv_transpose_impl)
    init = INITS[self.weight_init]
    x = apply(nn.Dense(16 * self.base_channels, kernel_init=init, dtype=self.dtype,
                       name='Dense_0'), z)
    x = nn.relu(batch_norm()(x)).reshape(z.shape[0], 4, 4, self.base_channels)
    for i, features in enumerate(self.channels):
      x = apply(conv_transpose(features, 4, 2, dtype=self.dtype, winograd=self.winograd,
                               kernel_init=init, name=f'ConvTranspose_{i}'), x)
      x = nn.relu(batch_norm()(x))
    x = apply(conv3x3(self.out_channels, 'Conv_out', self.dtype, self.winograd, init), x)
    return jnp.tanh(x).astype(jnp.float32)


class SNGANCNNDiscriminator(nn.Module):
  """images [N, H, W, C] in [-1, 1] -> logits [N]."""
  channels: tuple[int, ...]
  top_channels: int
  leaky_slope: float
  strided_conv_impl: str
  spectral_norm: bool = True
  winograd: bool = True
  weight_init: str = 'glorot'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array, labels: Array | None, train: bool) -> Array:
    del labels
    apply = functools.partial(layers.apply_layer, spectral_norm=self.spectral_norm, train=train)
    act = functools.partial(nn.leaky_relu, negative_slope=self.leaky_slope)
    strided = dcgan.strided_conv_layer(self.strided_conv_impl)
    init = INITS[self.weight_init]
    x = images
    for i, features in enumerate(self.channels):
      x = act(apply(conv3x3(features, f'Conv_{i}_a', self.dtype, self.winograd, init), x))
      x = act(apply(strided(features, 4, 2, dtype=self.dtype, winograd=self.winograd,
                            kernel_init=init, name=f'Conv_{i}_b'), x))
    x = act(apply(conv3x3(self.top_channels, 'Conv_top', self.dtype, self.winograd, init), x))
    x = x.reshape(x.shape[0], -1)
    logits = apply(nn.Dense(1, kernel_init=init, dtype=self.dtype, name='Dense_0'), x)
    return logits[:, 0].astype(jnp.float32)


def validate(block: ml_collections.ConfigDict, spec: registry.ModelSpec) -> list[str]:
  """Problems with `config.model.sngan_cnn`, each naming the field (relative to the block)."""
  problems = dcgan.layer_problems(block)
  if block.weight_init not in INITS:
    problems.append(f'weight_init={block.weight_init!r} is unknown; use one of {list(INITS)}.')
  size = 4 * 2 ** len(block.G.channels)
  if (size, size, block.G.out_channels) != tuple(spec.image_shape):
    problems.append(f'G makes {(size, size, block.G.out_channels)} images but the data are '
                    f'{tuple(spec.image_shape)}: 4 * 2**len(G.channels) must be the image '
                    f'size and G.out_channels its channels.')
  if spec.image_shape[0] % 2 ** len(block.D.channels):
    problems.append(f'D.channels: {len(block.D.channels)} halvings do not divide the image '
                    f'size {spec.image_shape[0]}.')
  return problems


@registry.register('sngan_cnn', validate=validate)
def build(block: ml_collections.ConfigDict,
          spec: registry.ModelSpec) -> tuple[nn.Module, nn.Module]:
  generator = SNGANCNNGenerator(
      base_channels=block.G.base_channels, channels=tuple(block.G.channels),
      out_channels=block.G.out_channels, bn_momentum=block.bn_momentum,
      bn_epsilon=block.bn_epsilon, conv_transpose_impl=block.conv_transpose_impl,
      spectral_norm=block.G.spectral_norm, winograd=block.winograd,
      weight_init=block.weight_init, dtype=spec.dtype)
  discriminator = SNGANCNNDiscriminator(
      channels=tuple(block.D.channels), top_channels=block.D.top_channels,
      leaky_slope=block.D.leaky_slope, strided_conv_impl=block.strided_conv_impl,
      spectral_norm=block.D.spectral_norm, winograd=block.winograd,
      weight_init=block.weight_init, dtype=spec.dtype)
  return generator, discriminator
