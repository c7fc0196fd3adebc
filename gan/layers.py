"""Strided convolutions rewritten as stride-1 convolutions, for speed on XLA:CPU.

XLA:CPU runs transposed convolutions, and the input gradients of strided convolutions
(both are convolutions of a zero-dilated input), 10-20x slower than a plain stride-1
convolution of the same size (jax-ml/jax#23783). Both layers here compute exactly the
function of the Flax layer they replace, with the same parameter names and shapes, so a
checkpoint or a test can swap one for the other:

* `SubPixelConvTranspose` == `nn.ConvTranspose(padding='SAME')`: each of the s*s output
  phases of a stride-s transposed convolution is a stride-1 convolution of the undilated
  input with a subset of the kernel taps; all phases are computed as one convolution with
  s*s times the output channels, then interleaved by depth-to-space.
* `SpaceToDepthConv` == `nn.Conv(strides=s, padding='SAME')`: the input is folded into
  s*s times the channels by space-to-depth and convolved at stride 1, so its input
  gradient is a stride-1 convolution too.

The small (taps, phases) index maps are computed once in numpy at trace time; the kernel
of the stride-1 convolution is gathered from the stored kernel inside the step, so
gradients reach the stored kernel through the gather.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Keras' default kernel initialiser; symmetric in fan-in and fan-out, so it gives the
# same distribution for a Conv2DTranspose kernel stored as (k, k, out, in) and for a
# Flax kernel stored as (k, k, in, out).
glorot_uniform = nn.initializers.glorot_uniform()


def _transpose_tap_map(kernel_size: int, stride: int) -> tuple[np.ndarray, int, int]:
  """Kernel index for each (tap, output phase) of a SAME transposed convolution.

  `lax.conv_transpose(padding='SAME')` dilates the input by `stride`, pads it by
  (pad_a, pad_b) and correlates it with the kernel, so output o = s*m + p reads input
  m + d through kernel tap k whenever p + k - pad_a = s*d. Returns the map
  [taps, phases] -> k (`kernel_size` where no tap exists), and the lowest and highest
  input offset d.
  """
  pad_len = kernel_size + stride - 2
  pad_a = kernel_size - 1 if stride > kernel_size - 1 else int(np.ceil(pad_len / 2))
  taps = [((p + k - pad_a) // stride, p, k)
          for p in range(stride) for k in range(kernel_size)
          if (p + k - pad_a) % stride == 0]
  d_min = min(d for d, _, _ in taps)
  d_max = max(d for d, _, _ in taps)
  tap_map = np.full((d_max - d_min + 1, stride), kernel_size)
  for d, p, k in taps:
    tap_map[d - d_min, p] = k
  return tap_map, d_min, d_max


def _strided_tap_map(kernel_size: int, stride: int,
                     size: int) -> tuple[np.ndarray, int, int]:
  """Kernel index for each (tap, input phase) of a SAME strided convolution.

  A SAME convolution pads `pad_before` zeros, so output o reads input s*o + k -
  pad_before = s*(o + d) + p, that is phase p of space-to-depth position o + d.
  Returns the map [taps, phases] -> k (`kernel_size` where no tap exists), and the
  lowest and highest offset d.
  """
  out_size = -(-size // stride)
  pad_before = max((out_size - 1) * stride + kernel_size - size, 0) // 2
  offsets = [(k - pad_before) // stride for k in range(kernel_size)]
  d_min, d_max = min(offsets), max(offsets)
  tap_map = np.full((d_max - d_min + 1, stride), kernel_size)
  for k in range(kernel_size):
    d, p = divmod(k - pad_before, stride)
    tap_map[d - d_min, p] = k
  return tap_map, d_min, d_max


def _gather_taps(kernel: Array, row_map: np.ndarray, col_map: np.ndarray) -> Array:
  """[k, k, in, out] kernel -> [taps_h, taps_w, s, s, in, out], zeros where no tap."""
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  rows = row_map[:, None, :, None]   # [taps_h, 1, s, 1]
  cols = col_map[None, :, None, :]   # [1, taps_w, 1, s]
  return padded[rows, cols]


# Below this many output channels a stride-1 convolution runs faster as XLA:CPU's own
# convolution; at or above it, as patches times a matrix (measured on a 2-core x86 CPU,
# batch 256: G's 512- and 1024-channel phase convolutions train 2x faster as matmuls,
# mostly through the kernel gradient, while the 12-channel output layer is 2.5x slower).
_MATMUL_MIN_FEATURES = 256


def _conv(inputs: Array, kernel: Array, padding: list[tuple[int, int]]) -> Array:
  """Stride-1 NHWC convolution with explicit (before, after) padding per spatial axis."""
  if jax.default_backend() == 'cpu' and kernel.shape[-1] >= _MATMUL_MIN_FEATURES:
    return _conv_as_matmul(inputs, kernel, padding)
  return jax.lax.conv_general_dilated(
      inputs, kernel, window_strides=(1, 1), padding=padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _conv_as_matmul(inputs: Array, kernel: Array, padding: list[tuple[int, int]]) -> Array:
  """The same convolution as [N*H*W, taps*C] patches @ [taps*C, out] (im2col)."""
  batch, _, _, channels = inputs.shape
  taps_h, taps_w, _, features = kernel.shape
  padded = jnp.pad(inputs, ((0, 0), *padding, (0, 0)))
  out_h, out_w = padded.shape[1] - taps_h + 1, padded.shape[2] - taps_w + 1
  # Patch channels ordered (tap row, tap column, channel), as the HWIO kernel flattens.
  patches = jnp.concatenate([padded[:, i:i + out_h, j:j + out_w, :]
                             for i in range(taps_h) for j in range(taps_w)], axis=-1)
  outputs = patches.reshape(-1, taps_h * taps_w * channels) @ kernel.reshape(-1, features)
  return outputs.reshape(batch, out_h, out_w, features)


class _SquareConv(nn.Module):
  """The fields and parameters of the Flax layer replaced: `kernel` [k, k, in, features]
  and `bias` [features]."""
  features: int
  kernel_size: int
  strides: int
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: Callable = glorot_uniform
  bias_init: Callable = nn.initializers.zeros_init()

  def _parameters(self, inputs: Array) -> tuple[Array, Array, Array | None]:
    """(inputs, kernel, bias) in the compute dtype; called from `__call__`."""
    k, in_features = self.kernel_size, inputs.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (k, k, in_features, self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=self.dtype)


class SubPixelConvTranspose(_SquareConv):
  """`nn.ConvTranspose(features, (k, k), (s, s), padding='SAME')`, as a stride-1 conv.

  Parameters are `kernel` [k, k, in, features] and `bias` [features], as in the Flax
  layer (with its default `transpose_kernel=False`).
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    batch, height, width, in_features = inputs.shape
    k, s = self.kernel_size, self.strides
    inputs, kernel, bias = self._parameters(inputs)

    tap_map, d_min, d_max = _transpose_tap_map(k, s)
    taps = tap_map.shape[0]
    phase_kernel = _gather_taps(kernel, tap_map, tap_map)  # [T, T, s, s, in, out]
    phase_kernel = phase_kernel.transpose(0, 1, 4, 2, 3, 5).reshape(
        taps, taps, in_features, s * s * self.features)
    phases = _conv(inputs, phase_kernel, [(-d_min, d_max)] * 2)  # [N, H, W, s*s*out]
    outputs = phases.reshape(batch, height, width, s, s, self.features)
    outputs = outputs.transpose(0, 1, 3, 2, 4, 5).reshape(
        batch, height * s, width * s, self.features)
    if bias is not None:
      outputs = outputs + bias
    return outputs


class SpaceToDepthConv(_SquareConv):
  """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')`, as a stride-1 conv.

  Parameters are `kernel` [k, k, in, features] and `bias` [features], as in the Flax
  layer. The input's height and width must be multiples of the stride.
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    batch, height, width, in_features = inputs.shape
    k, s = self.kernel_size, self.strides
    if height % s or width % s:
      raise ValueError(f'SpaceToDepthConv needs height and width divisible by the stride '
                       f'{s}; got input shape {inputs.shape}.')
    inputs, kernel, bias = self._parameters(inputs)

    row_map, row_min, row_max = _strided_tap_map(k, s, height)
    col_map, col_min, col_max = _strided_tap_map(k, s, width)
    phase_kernel = _gather_taps(kernel, row_map, col_map).reshape(
        len(row_map), len(col_map), s * s * in_features, self.features)
    folded = inputs.reshape(batch, height // s, s, width // s, s, in_features)
    folded = folded.transpose(0, 1, 3, 2, 4, 5).reshape(
        batch, height // s, width // s, s * s * in_features)
    outputs = _conv(folded, phase_kernel, [(-row_min, row_max), (-col_min, col_max)])
    if bias is not None:
      outputs = outputs + bias
    return outputs
