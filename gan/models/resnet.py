"""The ResNet family of SN-GAN (Miyato et al. 2018, Appendix B.4) for 32x32 images.

G: z -> Dense(4*4*C) -> [4, 4, C] -> GBlock x 3 (each doubling the size) -> BN -> ReLU
   -> Conv 3x3 (3) -> tanh. A GBlock is BN -> ReLU -> nearest 2x upsample -> Conv 3x3
   -> BN -> ReLU -> Conv 3x3, plus the shortcut upsample -> Conv 1x1.
D: images -> an optimised first block (Conv 3x3 -> ReLU -> Conv 3x3 -> avgpool 2, plus
   avgpool 2 -> Conv 1x1) -> blocks (ReLU -> Conv 3x3 -> ReLU -> Conv 3x3 [-> avgpool 2],
   plus Conv 1x1 [-> avgpool 2] where the block downsamples or changes width, the
   identity otherwise) -> ReLU -> sum over positions -> Dense(1, no bias) logit; spectral
   norm on every layer.

With C = 256 in G and 128 in D (configs/sngan_resnet.py) the parameters are those of the
official Chainer code (pfnet-research/sngan_projection) and its PyTorch re-runs
(tests/test_families.py pins them). The residual convolutions start Xavier-uniform with
gain sqrt(2), the shortcuts and the rest with gain 1, as those implementations do; biases
zero. The 3x3 convolutions run as `gan.ops`' SpaceToDepthConv at stride 1: XLA's
convolution, or Winograd's F(4x4, 3x3) on the CPU. Unconditional: `labels` is taken by
the contract and ignored.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan import ops
from gan.models import dcgan, registry

Array = jax.Array

RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')  # Xavier, gain sqrt(2).


def _upsample(x: Array) -> Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avgpool(x: Array) -> Array:
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _conv_layer(features: int, kernel_size: int, name: str, residual: bool, dtype,
                winograd: bool) -> nn.Module:
  """A SAME stride-1 convolution with bias: 3x3 by `gan.ops`, 1x1 by Flax."""
  init = RESIDUAL_INIT if residual else ops.glorot_uniform
  if kernel_size == 3:
    return ops.SpaceToDepthConv(features, 3, 1, kernel_init=init, dtype=dtype,
                                winograd=winograd, name=name)
  return nn.Conv(features, (1, 1), kernel_init=init, dtype=dtype, name=name)


class _Layers(nn.Module):
  """What both networks' blocks share: their convolutions, spectrally normalised or not.
  `conv` creates a layer, so it is called from the blocks' compact `__call__` only."""
  spectral_norm: bool
  winograd: bool
  dtype: jnp.dtype

  def conv(self, x: Array, features: int, kernel_size: int, name: str, train: bool,
           residual: bool = True) -> Array:
    layer = _conv_layer(features, kernel_size, name, residual, self.dtype, self.winograd)
    return dcgan.apply_layer(layer, x, self.spectral_norm, train)


class GBlock(_Layers):
  features: int = 256
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    batch_norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                                   momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                                   dtype=self.dtype)
    h = _upsample(nn.relu(batch_norm(name='BatchNorm_0')(x)))
    h = self.conv(h, self.features, 3, 'Conv_0', train)
    h = nn.relu(batch_norm(name='BatchNorm_1')(h))
    h = self.conv(h, self.features, 3, 'Conv_1', train)
    return h + self.conv(_upsample(x), self.features, 1, 'Shortcut', train, residual=False)


class DBlock(_Layers):
  features: int = 128
  downsample: bool = True
  optimized: bool = False  # The first block: no ReLU before its first conv, pool first.

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    h = x if self.optimized else nn.relu(x)
    h = self.conv(h, self.features, 3, 'Conv_0', train)
    h = self.conv(nn.relu(h), self.features, 3, 'Conv_1', train)
    if self.downsample:
      h = _avgpool(h)
    if self.optimized:
      shortcut = self.conv(_avgpool(x), self.features, 1, 'Shortcut', train, residual=False)
    elif self.downsample or x.shape[-1] != self.features:
      shortcut = self.conv(x, self.features, 1, 'Shortcut', train, residual=False)
      shortcut = _avgpool(shortcut) if self.downsample else shortcut
    else:
      shortcut = x
    return h + shortcut


class ResNetGenerator(nn.Module):
  """z [N, latent] -> images [N, 4 * 2**num_blocks, ..., C] in [-1, 1]."""
  channels: int
  num_blocks: int
  out_channels: int
  bn_momentum: float
  bn_epsilon: float
  spectral_norm: bool = False
  winograd: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array, labels: Array | None, train: bool) -> Array:
    del labels
    layers = dict(spectral_norm=self.spectral_norm, winograd=self.winograd, dtype=self.dtype)
    x = dcgan.apply_layer(nn.Dense(16 * self.channels, kernel_init=ops.glorot_uniform,
                                   dtype=self.dtype, name='Dense_0'),
                          z, self.spectral_norm, train)
    x = x.reshape(z.shape[0], 4, 4, self.channels)
    for i in range(self.num_blocks):
      x = GBlock(features=self.channels, bn_momentum=self.bn_momentum,
                 bn_epsilon=self.bn_epsilon, name=f'GBlock_{i}', **layers)(x, train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)(x))
    x = dcgan.apply_layer(_conv_layer(self.out_channels, 3, 'Conv_out', False, self.dtype,
                                      self.winograd), x, self.spectral_norm, train)
    return jnp.tanh(x).astype(jnp.float32)


class ResNetDiscriminator(nn.Module):
  """images [N, H, W, C] in [-1, 1] -> logits [N]."""
  channels: int
  downsample: tuple[bool, ...]
  spectral_norm: bool = True
  winograd: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array, labels: Array | None, train: bool) -> Array:
    del labels
    layers = dict(spectral_norm=self.spectral_norm, winograd=self.winograd, dtype=self.dtype)
    x = images
    for i, down in enumerate(self.downsample):
      x = DBlock(features=self.channels, downsample=down, optimized=i == 0,
                 name=f'DBlock_{i}', **layers)(x, train)
    x = nn.relu(x).sum(axis=(1, 2))  # Global sum pooling, as SN-GAN.
    logits = dcgan.apply_layer(nn.Dense(1, use_bias=False, kernel_init=ops.glorot_uniform,
                                        dtype=self.dtype, name='Dense_0'),
                               x, self.spectral_norm, train)
    return logits[:, 0].astype(jnp.float32)


def validate(block: ml_collections.ConfigDict, spec: registry.ModelSpec) -> list[str]:
  """Problems with `config.model.resnet`, each naming the field (relative to the block)."""
  problems = dcgan.layer_problems(block, strided=False)
  size = 4 * 2 ** block.G.num_blocks
  if (size, size, block.G.out_channels) != tuple(spec.image_shape):
    problems.append(f'G makes {(size, size, block.G.out_channels)} images but the data are '
                    f'{tuple(spec.image_shape)}: 4 * 2**G.num_blocks must be the image size '
                    f'and G.out_channels its channels.')
  if not block.D.downsample or spec.image_shape[0] % 2 ** sum(block.D.downsample):
    problems.append(f'D.downsample={tuple(block.D.downsample)}: give one entry per block '
                    f'(at least one), halving the image size at most until it is odd.')
  return problems


@registry.register('resnet', validate=validate)
def build(block: ml_collections.ConfigDict,
          spec: registry.ModelSpec) -> tuple[nn.Module, nn.Module]:
  generator = ResNetGenerator(
      channels=block.G.channels, num_blocks=block.G.num_blocks,
      out_channels=block.G.out_channels, bn_momentum=block.bn_momentum,
      bn_epsilon=block.bn_epsilon, spectral_norm=block.G.spectral_norm,
      winograd=block.winograd, dtype=spec.dtype)
  discriminator = ResNetDiscriminator(
      channels=block.D.channels, downsample=tuple(block.D.downsample),
      spectral_norm=block.D.spectral_norm, winograd=block.winograd, dtype=spec.dtype)
  return generator, discriminator
