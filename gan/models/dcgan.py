"""The DCGAN family: the course project's two designs (configs/baseline.py, recap.py).

G: z -> Dense -> BN -> act -> [b, b, C] -> (ConvT/2 -> BN -> act)* -> ConvT/2 -> tanh.
D: images -> (Conv/2 -> [BN] -> act -> [Dropout])* -> flatten -> Dense(1) logit.

Initialisation follows Keras: Glorot-uniform kernels, zero biases, BatchNorm scale 1 and
offset 0. `D.spectral_norm` (and `G.spectral_norm`) divide each layer's kernel by its
largest singular value (Miyato et al. 2018, flax's `nn.SpectralNorm`: one power
iteration a call, its vectors in their own `spectral_norm` collection, so they are
updated in train steps only and checkpointed with the state).

Conditional (`model.conditional`): G's BatchNorms become class-conditional (a per-class
gain and bias) and D adds its class term on its flattened features: the projection
<embed(y), h>, or an AC-GAN head (`model.class_head`, `gan.models.conditioning`).
Unconditional, both take `labels` by the model contract and ignore them, with the plain
design's parameters.

The strided layers run as `gan.ops` rewrites on the CPU (`conv_transpose_impl`,
`strided_conv_impl`), each computing the Flax layer's function with its parameters.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan import ops
from gan.models import conditioning, registry
from gan.models.layers import apply_layer

Array = jax.Array

ACTIVATIONS = {'relu': lambda slope: nn.relu,
               'leaky_relu': lambda slope: functools.partial(nn.leaky_relu, negative_slope=slope)}

# The layers of each role by config name ('flax' is the Flax layer itself); each rewrite
# computes the Flax layer's function with its parameters (tests/test_ops.py).
CONV_TRANSPOSE_IMPLS = {'subpixel': ops.SubPixelConvTranspose, 'flax': nn.ConvTranspose}
STRIDED_CONV_IMPLS = {'space_to_depth': ops.SpaceToDepthConv,
                      'subpixel_grad': ops.SubPixelGradConv, 'flax': nn.Conv}


def _square_conv_layer(impls: dict, impl: str) -> Callable[..., nn.Module]:
  """A constructor (features, kernel_size, strides, winograd=..., **kw) of a SAME square
  layer: one of the rewrites, or the Flax layer with Keras' initialiser."""
  layer = impls[impl]
  if impl != 'flax':
    return layer

  def flax_conv(features, kernel_size, strides, winograd=None, **kw):
    del winograd  # XLA picks the Flax layer's algorithm.
    kw.setdefault('kernel_init', ops.glorot_uniform)
    return layer(features, (kernel_size, kernel_size), (strides, strides), padding='SAME', **kw)

  return flax_conv


def conv_transpose_layer(impl: str) -> Callable[..., nn.Module]:
  """G's stride-2 layer for `conv_transpose_impl`."""
  return _square_conv_layer(CONV_TRANSPOSE_IMPLS, impl)


def strided_conv_layer(impl: str) -> Callable[..., nn.Module]:
  """D's stride-2 layer for `strided_conv_impl`."""
  return _square_conv_layer(STRIDED_CONV_IMPLS, impl)


class DCGANGenerator(nn.Module):
  """z [N, latent] (and labels [N] when conditional) -> images [N, H, W, C] in [-1, 1]."""
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
  spectral_norm: bool = False
  winograd: bool = True
  num_classes: int = 0  # > 0: conditional BatchNorm on the labels.
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array, labels: Array | None, train: bool) -> Array:
    act = ACTIVATIONS[self.activation](self.leaky_slope)
    conv_transpose = conv_transpose_layer(self.conv_transpose_impl)
    norm = conditioning.batch_norm(self.num_classes, train, self.bn_momentum,
                                   self.bn_epsilon, self.dtype)

    x = apply_layer(nn.Dense(self.base_size ** 2 * self.base_channels, use_bias=False,
                        kernel_init=ops.glorot_uniform, dtype=self.dtype, name='Dense_0'),
               z, self.spectral_norm, train)
    x = act(norm(x, labels))
    x = x.reshape(z.shape[0], self.base_size, self.base_size, self.base_channels)
    # Layers are named by role, not by implementation, so 'subpixel' and 'flax' runs
    # share one parameter tree (and checkpoints).
    for i, features in enumerate(self.channels):
      x = apply_layer(conv_transpose(features, self.kernel_size, 2, use_bias=False,
                                dtype=self.dtype, winograd=self.winograd,
                                name=f'ConvTranspose_{i}'), x, self.spectral_norm, train)
      x = act(norm(x, labels))
    x = apply_layer(conv_transpose(self.out_channels, self.kernel_size, 2, use_bias=False,
                              dtype=self.dtype, winograd=self.winograd,
                              name=f'ConvTranspose_{len(self.channels)}'),
               x, self.spectral_norm, train)
    # The image leaves G in float32 whatever the compute dtype: D and the sample grids
    # expect [-1, 1] float32.
    return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
  """images [N, H, W, C] in [-1, 1] (and labels [N] when conditional) -> logits [N]."""
  channels: tuple[int, ...]
  batch_norm: tuple[bool, ...]
  kernel_size: int
  activation: str
  leaky_slope: float
  dropout: float
  bn_momentum: float
  bn_epsilon: float
  strided_conv_impl: str
  spectral_norm: bool = False
  winograd: bool = True
  class_head: str = 'projection'  # Of a conditional D: conditioning.class_term.
  num_classes: int = 0  # > 0: the class term on the labels.
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array, labels: Array | None, train: bool) -> Array:
    act = ACTIVATIONS[self.activation](self.leaky_slope)
    conv = strided_conv_layer(self.strided_conv_impl)
    x = images
    for i, (features, use_bn) in enumerate(zip(self.channels, self.batch_norm, strict=True)):
      x = apply_layer(conv(features, self.kernel_size, 2, dtype=self.dtype, winograd=self.winograd,
                      name=f'Conv_{i}'), x, self.spectral_norm, train)
      if use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         epsilon=self.bn_epsilon, dtype=self.dtype)(x)
      x = act(x)
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = x.reshape(x.shape[0], -1)
    logits = apply_layer(nn.Dense(1, kernel_init=ops.glorot_uniform, dtype=self.dtype,
                             name='Dense_0'), x, self.spectral_norm, train)
    logits = logits[:, 0].astype(jnp.float32)
    if self.num_classes:
      logits += conditioning.class_term(self, self.class_head, x, labels, self.num_classes,
                                        self.spectral_norm, train, self.dtype)
    return logits


def layer_problems(block: ml_collections.ConfigDict, strided: bool = True) -> list[str]:
  """Problems with the settings a family's block shares with this one: BatchNorm's
  `bn_momentum` and `bn_epsilon`, and (`strided`) the strided layers' implementations."""
  problems = []
  if strided:
    for setting, impls in (('conv_transpose_impl', CONV_TRANSPOSE_IMPLS),
                           ('strided_conv_impl', STRIDED_CONV_IMPLS)):
      if block[setting] not in impls:
        problems.append(f'{setting}={block[setting]!r} is unknown; use one of {sorted(impls)}.')
  if not 0 < block.bn_momentum < 1:
    problems.append(f'bn_momentum={block.bn_momentum} must be in (0, 1).')
  if not block.bn_epsilon > 0:
    problems.append(f'bn_epsilon={block.bn_epsilon} must be > 0.')
  return problems


def validate(block: ml_collections.ConfigDict, spec: registry.ModelSpec) -> list[str]:
  """Problems with `config.model.dcgan`, each naming the field (relative to the block)."""
  problems = layer_problems(block)

  def need(condition: bool, message: str) -> None:
    if not condition:
      problems.append(message)

  for net in ('G', 'D'):
    cfg = block[net]
    need(cfg.activation in ACTIVATIONS,
         f'{net}.activation={cfg.activation!r}: use one of {sorted(ACTIVATIONS)}.')
    need(cfg.kernel_size > 0, f'{net}.kernel_size={cfg.kernel_size} must be > 0.')
  need(len(block.D.channels) == len(block.D.batch_norm),
       f'D.batch_norm has {len(block.D.batch_norm)} entries but D.channels has '
       f'{len(block.D.channels)}: give one per convolution.')
  need(0 <= block.D.dropout < 1, f'D.dropout={block.D.dropout} must be in [0, 1).')
  size = block.G.base_size * 2 ** (len(block.G.channels) + 1)
  need((size, size, block.G.out_channels) == tuple(spec.image_shape),
       f'G makes {(size, size, block.G.out_channels)} images but the data are '
       f'{tuple(spec.image_shape)}: G.base_size * 2**(len(G.channels) + 1) must be the image '
       f'size and G.out_channels its channels.')
  return problems


@registry.register('dcgan', validate=validate, conditional=True)
def build(block: ml_collections.ConfigDict,
          spec: registry.ModelSpec) -> tuple[nn.Module, nn.Module]:
  num_classes = spec.num_classes if spec.conditional else 0
  generator = DCGANGenerator(
      base_size=block.G.base_size, base_channels=block.G.base_channels,
      channels=tuple(block.G.channels), out_channels=block.G.out_channels,
      kernel_size=block.G.kernel_size, activation=block.G.activation,
      leaky_slope=block.G.leaky_slope, bn_momentum=block.bn_momentum,
      bn_epsilon=block.bn_epsilon, conv_transpose_impl=block.conv_transpose_impl,
      spectral_norm=block.G.spectral_norm, winograd=block.winograd,
      num_classes=num_classes, dtype=spec.dtype)
  discriminator = DCGANDiscriminator(
      channels=tuple(block.D.channels), batch_norm=tuple(block.D.batch_norm),
      kernel_size=block.D.kernel_size, activation=block.D.activation,
      leaky_slope=block.D.leaky_slope, dropout=block.D.dropout,
      bn_momentum=block.bn_momentum, bn_epsilon=block.bn_epsilon,
      strided_conv_impl=block.strided_conv_impl, spectral_norm=block.D.spectral_norm,
      winograd=block.winograd, num_classes=num_classes, class_head=spec.class_head,
      dtype=spec.dtype)
  return generator, discriminator
