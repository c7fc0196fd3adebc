"""Strided convolutions whose gradients avoid zero-dilated inputs, for speed on XLA:CPU.

XLA:CPU computes the input gradient of a strided convolution as a convolution of the
zero-dilated output gradient, 10-20x slower than a plain stride-1 convolution of the same
size (jax-ml/jax#23783). Both layers here compute `nn.Conv(strides=s, padding='SAME')`:

* `SubPixelGradConv`: XLA's own convolution on accelerators; on the CPU, for wide inputs,
  a stride-1 convolution of the space-to-depth input by Winograd's algorithm, and for
  narrow ones XLA's forward with a custom VJP that computes the input gradient phase by
  phase, as one stride-1 convolution of the output gradient and depth-to-space.
* `SpaceToDepthConv`: the input folded into s*s times the channels by space-to-depth and
  convolved at stride 1, so its input gradient is a stride-1 convolution too.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax

from gan.ops import common, winograd

Array = jax.Array


def _space_to_depth_conv(inputs: Array, kernel: Array, stride: int,
                         conv: Callable[..., Array] = common.conv) -> Array:
  """A SAME stride-s convolution as a stride-1 `conv` of the space-to-depth input.

  The input is folded into s*s times the channels, [N, H/s, W/s, s*s*in], and the kernel
  taps gathered to match (`common.strided_tap_map`; zeros where a phase has no tap: 36
  taps for a 5x5/2 kernel's 25), so that no gradient is a zero-dilated convolution.
  """
  batch, height, width, in_features = inputs.shape
  k, s = kernel.shape[0], stride
  row_map, row_min, row_max = common.strided_tap_map(k, s, height)
  col_map, col_min, col_max = common.strided_tap_map(k, s, width)
  phase_kernel = common.gather_taps(kernel, row_map, col_map).reshape(
      len(row_map), len(col_map), s * s * in_features, kernel.shape[-1])
  folded = inputs.reshape(batch, height // s, s, width // s, s, in_features)
  folded = folded.transpose(0, 1, 3, 2, 4, 5).reshape(
      batch, height // s, width // s, s * s * in_features)
  return conv(folded, phase_kernel, [(-row_min, row_max), (-col_min, col_max)])


class SpaceToDepthConv(common.SquareConv):
  """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')`, as a stride-1 conv
  of the space-to-depth input (`_space_to_depth_conv`): XLA's convolution, or on the CPU
  for wide inputs Winograd's (as `SubPixelGradConv` runs them).

  Parameters are `kernel` [k, k, in, features] and `bias` [features], as in the Flax
  layer. The input's height and width must be multiples of the stride.
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    self._require_size_divisible_by_stride(inputs)
    pays = self._space_to_depth_winograd_pays(inputs)
    conv = winograd.winograd_conv if pays else common.conv
    inputs, kernel, bias = self._parameters(inputs)
    outputs = _space_to_depth_conv(inputs, kernel, self.strides, conv=conv)
    return outputs + bias if bias is not None else outputs


def _strided_conv_input_grad(cotangent: Array, kernel: Array, stride: int,
                             in_size: tuple[int, int]) -> Array:
  """The input gradient of a SAME stride-s `common.conv`, phase by phase, with no
  zero-dilated input.

  Output o reads input s*(o + d) + p through tap k = tap_map[d, p]
  (`common.strided_tap_map`),
  so input phase p at position m gets sum_d dy[m - d] @ kernel[k].T: one stride-1
  correlation of dy for all s*s phases (offsets flipped, in/out channels swapped), then
  depth-to-space.
  """
  k, s = kernel.shape[0], stride
  row_map, row_min, row_max = common.strided_tap_map(k, s, in_size[0])
  col_map, col_min, col_max = common.strided_tap_map(k, s, in_size[1])
  # Offset index j of the correlation reads dy[m + j - d_max], i.e. d = d_max - j.
  # [Th, Tw, s, s, in, out]
  phase_kernel = common.gather_taps(kernel, row_map[::-1], col_map[::-1])
  taps_h, taps_w, _, _, in_features, features = phase_kernel.shape
  phase_kernel = phase_kernel.transpose(0, 1, 5, 2, 3, 4).reshape(
      taps_h, taps_w, features, s * s * in_features)
  phases = common.conv(cotangent, phase_kernel, [(row_max, -row_min), (col_max, -col_min)])
  return common.depth_to_space(phases.reshape(*phases.shape[:3], s, s, in_features))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided_conv_subpixel_grad(inputs: Array, kernel: Array, stride: int) -> Array:
  return common.conv(inputs, kernel, 'SAME', stride)


def _strided_conv_subpixel_grad_fwd(inputs, kernel, stride):
  return common.conv(inputs, kernel, 'SAME', stride), (inputs, kernel)


def _strided_conv_subpixel_grad_bwd(stride, residuals, cotangent):
  inputs, kernel = residuals
  padding = jax.lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], (stride, stride),
                                    'SAME')
  kernel_grad = common.conv_kernel_grad(common.batch_minor(inputs), cotangent,
                                       kernel.shape[:2], padding, stride)
  input_grad = _strided_conv_input_grad(cotangent, kernel, stride, inputs.shape[1:3])
  return input_grad.astype(inputs.dtype), kernel_grad.astype(kernel.dtype)


_strided_conv_subpixel_grad.defvjp(_strided_conv_subpixel_grad_fwd,
                                   _strided_conv_subpixel_grad_bwd)


class SubPixelGradConv(common.SquareConv):
  """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')` with a cheaper backward.

  Parameters as the Flax layer's; height and width must be multiples of the stride.
  `method` picks how:

  * 'xla': XLA's own convolution and gradients (what 'auto' picks on GPU/TPU);
  * 'subpixel_grad': XLA's forward and kernel gradient (the latter from `common.batch_minor`
    inputs), and a custom VJP that computes the input gradient, which XLA:CPU computes
    as a convolution of the zero-dilated output gradient, phase by phase instead
    (`_strided_conv_input_grad`: 36 taps for a 5x5/2 kernel's 25, at XLA:CPU's full
    convolution speed);
  * 'winograd': `_space_to_depth_conv` by `winograd.winograd_conv`, differentiated by JAX;
  * 'auto' (default): 'xla' on accelerators; on the CPU 'winograd' for inputs of at
    least `winograd.MIN_IN_FEATURES` channels when `winograd` is set, else
    'subpixel_grad'.

  Each method's time per layer on the CPU is in docs/performance.md.
  """
  method: str = 'auto'

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    self._require_size_divisible_by_stride(inputs)
    inputs, kernel, bias = self._parameters(inputs)
    method = self.method
    if method == 'auto':
      method = ('xla' if jax.default_backend() != 'cpu' else
                'winograd' if self._space_to_depth_winograd_pays(inputs) else 'subpixel_grad')
    if method == 'xla':
      outputs = common.conv(inputs, kernel, 'SAME', self.strides)
    elif method == 'subpixel_grad':
      outputs = _strided_conv_subpixel_grad(inputs, kernel, self.strides)
    elif method == 'winograd':
      outputs = _space_to_depth_conv(inputs, kernel, self.strides, conv=winograd.winograd_conv)
    else:
      raise ValueError(f"Unknown SubPixelGradConv method {method!r}; use 'auto', 'xla', "
                       "'subpixel_grad' or 'winograd'.")
    return outputs + bias if bias is not None else outputs
