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
convolution, or Winograd's F(4x4, 3x3) on the CPU.

Conditional (`model.conditional`, SN-GAN with projection D, Miyato & Koyama 2018): the
blocks' BatchNorms become class-conditional and D adds <embed(y), h> on its pooled
features. `G.shared_dim` > 0 turns on BigGAN's shared embedding and hierarchical z (Brock et
al. 2019) and `weight_init='orthogonal'` its initialisation. Unconditional, `labels` is taken by
the contract and ignored.
"""


import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan import ops
from gan.models import conditioning, dcgan, layers, registry

Array = jax.Array

RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')  # Xavier, gain sqrt(2).
# `weight_init`: SN-GAN's Xavier scheme above; orthogonal kernels (the BigGAN paper's, at
# ImageNet scale); or N(0, 0.02) for every kernel and class table (BigGAN-PyTorch's CIFAR-10
# script, --G_init N02 --D_init N02).
INITS = ('xavier', 'orthogonal', 'normal02')


def kernel_init(init: str, residual: bool = False):
  if init == 'orthogonal':
    return nn.initializers.orthogonal()
  if init == 'normal02':
    return nn.initializers.normal(0.02)
  return RESIDUAL_INIT if residual else ops.glorot_uniform


def table_scale(init: str) -> float:
  """The spread of the class tables' initial values (conditional BatchNorm's gains about 1
  and biases about 0, the projection's embedding): BigGAN-PyTorch's N02 draws them from
  N(0, 0.02) (its gains are 1 + embed(y)); 0 starts them at exactly 1 and 0 (SN-GAN)."""
  return 0.02 if init == 'normal02' else 0.0


def _upsample(x: Array) -> Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avgpool(x: Array) -> Array:
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _conv_layer(features: int, kernel_size: int, name: str, residual: bool, dtype,
                winograd: bool, init_name: str = 'xavier') -> nn.Module:
  """A SAME stride-1 convolution with bias: 3x3 by `gan.ops`, 1x1 by Flax."""
  init = kernel_init(init_name, residual)
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
  weight_init: str = 'xavier'

  def conv(self, x: Array, features: int, kernel_size: int, name: str, train: bool,
           residual: bool = True) -> Array:
    layer = _conv_layer(features, kernel_size, name, residual, self.dtype, self.winograd,
                        self.weight_init)
    return layers.apply_layer(layer, x, self.spectral_norm, train)


class GBlock(_Layers):
  features: int = 256
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  num_classes: int = 0  # > 0: conditional BatchNorm.

  @nn.compact
  def __call__(self, x: Array, labels: Array | None, condition: Array | None,
               train: bool) -> Array:
    norm = conditioning.batch_norm(self.num_classes, train, self.bn_momentum, self.bn_epsilon,
                                   self.dtype, self.spectral_norm, kernel_init(self.weight_init),
                                   table_scale(self.weight_init))
    h = _upsample(nn.relu(norm(x, labels, condition, name='BatchNorm_0')))
    h = self.conv(h, self.features, 3, 'Conv_0', train)
    h = nn.relu(norm(h, labels, condition, name='BatchNorm_1'))
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
  """z [N, latent] (and labels [N] when conditional) -> images [N, 4 * 2**num_blocks,
  ..., C] in [-1, 1]."""
  channels: int
  num_blocks: int
  out_channels: int
  bn_momentum: float
  bn_epsilon: float
  spectral_norm: bool = False
  winograd: bool = True
  num_classes: int = 0  # > 0: conditional BatchNorm in the blocks.
  # > 0 (conditional only): BigGAN's shared class embedding of this size and hierarchical
  # z: z is split into num_blocks + 1 chunks, the first feeding the Dense layer, and block
  # i's BatchNorm gains and biases are linear in [embedding, chunk i + 1].
  shared_dim: int = 0
  weight_init: str = 'xavier'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array, labels: Array | None, train: bool) -> Array:
    net = dict(spectral_norm=self.spectral_norm, winograd=self.winograd, dtype=self.dtype,
               weight_init=self.weight_init)
    conditions = [None] * self.num_blocks
    if self.num_classes and self.shared_dim:
      chunks = jnp.split(z, self.num_blocks + 1, axis=-1)
      shared = nn.Embed(self.num_classes, self.shared_dim, name='SharedEmbed')(labels)
      z, conditions = chunks[0], [jnp.concatenate([shared, c], -1) for c in chunks[1:]]
    x = layers.apply_layer(nn.Dense(16 * self.channels, kernel_init=kernel_init(self.weight_init),
                                    dtype=self.dtype, name='Dense_0'),
                           z, self.spectral_norm, train)
    x = x.reshape(z.shape[0], 4, 4, self.channels)
    for i in range(self.num_blocks):
      x = GBlock(features=self.channels, bn_momentum=self.bn_momentum,
                 bn_epsilon=self.bn_epsilon, num_classes=self.num_classes,
                 name=f'GBlock_{i}', **net)(x, labels, conditions[i], train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)(x))
    out = _conv_layer(self.out_channels, 3, 'Conv_out', False, self.dtype, self.winograd,
                      self.weight_init)
    x = layers.apply_layer(out, x, self.spectral_norm, train)
    return jnp.tanh(x).astype(jnp.float32)


class ResNetDiscriminator(nn.Module):
  """images [N, H, W, C] in [-1, 1] (and labels [N] when conditional) -> logits [N]."""
  channels: int
  downsample: tuple[bool, ...]
  spectral_norm: bool = True
  winograd: bool = True
  num_classes: int = 0  # > 0: the class term on the pooled features.
  class_head: str = 'projection'  # Of a conditional D: conditioning.class_term.
  weight_init: str = 'xavier'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array, labels: Array | None, train: bool) -> Array:
    net = dict(spectral_norm=self.spectral_norm, winograd=self.winograd, dtype=self.dtype,
               weight_init=self.weight_init)
    x = images
    for i, down in enumerate(self.downsample):
      x = DBlock(features=self.channels, downsample=down, optimized=i == 0,
                 name=f'DBlock_{i}', **net)(x, train)
    x = nn.relu(x).sum(axis=(1, 2))  # Global sum pooling, as SN-GAN.
    head = nn.Dense(1, use_bias=False, kernel_init=kernel_init(self.weight_init),
                    dtype=self.dtype, name='Dense_0')
    logits = layers.apply_layer(head, x, self.spectral_norm, train)
    logits = logits[:, 0].astype(jnp.float32)
    if self.num_classes:
      embedding_init = (kernel_init(self.weight_init) if table_scale(self.weight_init)
                        else None)
      logits += conditioning.class_term(self, self.class_head, x, labels, self.num_classes,
                                        self.spectral_norm, train, self.dtype, embedding_init)
    return logits


def validate(block: ml_collections.ConfigDict, spec: registry.ModelSpec) -> list[str]:
  """Problems with `config.model.resnet`, each naming the field (relative to the block)."""
  problems = dcgan.layer_problems(block, strided=False)
  size = 4 * 2 ** block.G.num_blocks
  if (size, size, block.G.out_channels) != tuple(spec.image_shape):
    problems.append(f'G makes {(size, size, block.G.out_channels)} images but the data are '
                    f'{tuple(spec.image_shape)}: 4 * 2**G.num_blocks must be the image size '
                    f'and G.out_channels its channels.')
  if block.weight_init not in INITS:
    problems.append(f'weight_init={block.weight_init!r} is unknown; use one of {list(INITS)}.')
  if block.G.shared_dim < 0:
    problems.append(f'G.shared_dim={block.G.shared_dim} must be >= 0 (0: per-class tables).')
  if block.G.shared_dim and not spec.conditional:
    problems.append(f'G.shared_dim={block.G.shared_dim} is a class embedding, but the model '
                    f'is unconditional: set model.conditional=True or G.shared_dim=0.')
  if block.G.shared_dim and spec.latent_dim % (block.G.num_blocks + 1):
    problems.append(f'G.shared_dim > 0 splits z into G.num_blocks + 1 = '
                    f'{block.G.num_blocks + 1} chunks, but model.latent_dim={spec.latent_dim} '
                    f'does not divide by it.')
  if not block.D.downsample or spec.image_shape[0] % 2 ** sum(block.D.downsample):
    problems.append(f'D.downsample={tuple(block.D.downsample)}: give one entry per block '
                    f'(at least one), halving the image size at most until it is odd.')
  return problems


@registry.register('resnet', validate=validate, conditional=True)
def build(block: ml_collections.ConfigDict,
          spec: registry.ModelSpec) -> tuple[nn.Module, nn.Module]:
  num_classes = spec.num_classes if spec.conditional else 0
  generator = ResNetGenerator(
      channels=block.G.channels, num_blocks=block.G.num_blocks,
      out_channels=block.G.out_channels, bn_momentum=block.bn_momentum,
      bn_epsilon=block.bn_epsilon, spectral_norm=block.G.spectral_norm,
      winograd=block.winograd, num_classes=num_classes, shared_dim=block.G.shared_dim,
      weight_init=block.weight_init, dtype=spec.dtype)
  discriminator = ResNetDiscriminator(
      channels=block.D.channels, downsample=tuple(block.D.downsample),
      spectral_norm=block.D.spectral_norm, winograd=block.winograd, num_classes=num_classes,
      class_head=spec.class_head, weight_init=block.weight_init, dtype=spec.dtype)
  return generator, discriminator
