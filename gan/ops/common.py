"""What the CPU convolution rewrites share: XLA's convolution, tap maps, the layer base.

The rewrites (`gan.ops.subpixel`, `gan.ops.strided`) compute exactly the function of the
Flax layer they replace, with the same parameter names and shapes, so a checkpoint or a
test can swap one for the other. The small (taps, phases) index maps are computed once in
numpy at trace time; the kernel of each stride-1 convolution is gathered from the stored
kernel inside the step, so gradients reach the stored kernel through the gather.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.layout import Layout, with_layout_constraint

from gan.ops import winograd

Array = jax.Array

# Keras' default kernel initialiser; symmetric in fan-in and fan-out, so it gives the
# same distribution for a Conv2DTranspose kernel stored as (k, k, out, in) and for a
# Flax kernel stored as (k, k, in, out).
glorot_uniform = nn.initializers.glorot_uniform()


def transpose_pad_before(kernel_size: int, stride: int) -> int:
  """pad_a: the zeros `lax.conv_transpose(padding='SAME')` puts before the dilated input."""
  if stride > kernel_size - 1:
    return kernel_size - 1
  return -(-(kernel_size + stride - 2) // 2)


def transpose_tap_map(kernel_size: int, stride: int) -> tuple[np.ndarray, int, int]:
  """Kernel index for each (tap, output phase) of a SAME transposed convolution.

  `lax.conv_transpose(padding='SAME')` dilates the input by `stride`, pads it by
  (pad_a, pad_b) and correlates it with the kernel, so output o = s*m + p reads input
  m + d through kernel tap k whenever p + k - pad_a = s*d. Returns the map
  [taps, phases] -> k (`kernel_size` where no tap exists), and the lowest and highest
  input offset d.
  """
  pad_a = transpose_pad_before(kernel_size, stride)
  taps = [((p + k - pad_a) // stride, p, k)
          for p in range(stride) for k in range(kernel_size)
          if (p + k - pad_a) % stride == 0]
  d_min = min(d for d, _, _ in taps)
  d_max = max(d for d, _, _ in taps)
  tap_map = np.full((d_max - d_min + 1, stride), kernel_size)
  for d, p, k in taps:
    tap_map[d - d_min, p] = k
  return tap_map, d_min, d_max


def strided_tap_map(kernel_size: int, stride: int, size: int) -> tuple[np.ndarray, int, int]:
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


def gather_taps(kernel: Array, row_map: np.ndarray, col_map: np.ndarray) -> Array:
  """[k, k, in, out] kernel -> [taps_h, taps_w, s, s, in, out], zeros where no tap."""
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  rows = row_map[:, None, :, None]   # [taps_h, 1, s, 1]
  cols = col_map[None, :, None, :]   # [1, taps_w, 1, s]
  return padded[rows, cols]


def conv(inputs: Array, kernel: Array, padding: str | list[tuple[int, int]],
         stride: int = 1) -> Array:
  """XLA's own NHWC convolution; padding 'SAME' or (before, after) per spatial axis."""
  return jax.lax.conv_general_dilated(
      inputs, kernel, window_strides=(stride, stride), padding=padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def batch_minor(inputs: Array) -> Array:
  """[N, H, W, C] -> [C, H, W, N]: the layout XLA:CPU's kernel-gradient convolution reads.

  XLA's own transpose loops over the output in order, so each input cache line is read
  again for every channel it holds. Two transposes via [H, W, C, N] each read blocks that
  stay in cache, but left to itself XLA fuses them back into the one slow loop, or moves
  the layout change into a single-threaded copy; pinning [H, W, C, N] to its row-major
  layout keeps both as parallel loops (docs/performance.md).
  """
  hwcn = with_layout_constraint(inputs.transpose(1, 2, 3, 0), Layout((0, 1, 2, 3)))
  return hwcn.transpose(2, 0, 1, 3)


def conv_kernel_grad(inputs_batch_minor: Array, cotangent: Array, kernel_size: tuple[int, int],
                     padding: list[tuple[int, int]], stride: int = 1) -> Array:
  """The kernel gradient of `conv(inputs, kernel, padding, stride)`, from
  `batch_minor(inputs)`: the convolution XLA's own gradient runs, without its transpose.

  dK[a, b, i, o] = sum over n, y, x of padded_inputs[n, s*y + a, s*x + b, i] * dy[n, y, x, o]:
  a correlation of the padded inputs (batch i, features n) with dy as the kernel, dilated
  by the stride. Returns [kh, kw, in, out].
  """
  pads = [(low, k + (out - 1) * stride - size - low) for (low, _), k, size, out in zip(
      padding, kernel_size, inputs_batch_minor.shape[1:3], cotangent.shape[1:3])]
  grad = jax.lax.conv_general_dilated(
      inputs_batch_minor, cotangent.transpose(1, 2, 0, 3), (1, 1), pads,
      rhs_dilation=(stride, stride), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return grad.transpose(1, 2, 0, 3)


class SquareConv(nn.Module):
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
  # On the CPU, whether the 'auto' choices may run wide convolutions by Winograd's
  # algorithm (`winograd.winograd_conv`); False keeps exact-tap convolutions.
  winograd: bool = True

  def _require_size_divisible_by_stride(self, inputs: Array) -> None:
    if inputs.shape[1] % self.strides or inputs.shape[2] % self.strides:
      raise ValueError(f'{type(self).__name__} needs height and width divisible by the '
                       f'stride {self.strides}; got input shape {inputs.shape}.')

  def _winograd_pays(self, in_features: int, window: tuple[int, int]) -> bool:
    """Whether 'auto' runs this layer's stride-1 convolution (`window` taps, from
    `in_features` channels of the layer's input) by Winograd: on the CPU, with
    `winograd` set, for a square window of at most 3 x 3 (what was measured) and from
    `winograd.MIN_IN_FEATURES` input channels."""
    return (self.winograd and jax.default_backend() == 'cpu' and
            in_features >= winograd.MIN_IN_FEATURES and window[0] == window[1] <= 3)

  def _space_to_depth_winograd_pays(self, inputs: Array) -> bool:
    """`_winograd_pays` for this strided layer's space-to-depth convolution of `inputs`."""
    window = tuple(len(strided_tap_map(self.kernel_size, self.strides, size)[0])
                   for size in inputs.shape[1:3])
    return self._winograd_pays(inputs.shape[-1], window)

  def _parameters(self, inputs: Array) -> tuple[Array, Array, Array | None]:
    """(inputs, kernel, bias) in the compute dtype; called from `__call__`."""
    k, in_features = self.kernel_size, inputs.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (k, k, in_features, self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=self.dtype)


def depth_to_space(phases: Array) -> Array:
  """[N, H, W, s, s, C] phases -> [N, H*s, W*s, C] image."""
  batch, height, width, stride, _, features = phases.shape
  return phases.transpose(0, 1, 3, 2, 4, 5).reshape(
      batch, height * stride, width * stride, features)
