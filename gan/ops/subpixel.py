"""`SubPixelConvTranspose`: a transposed convolution without a zero-dilated input.

XLA:CPU runs transposed convolutions (convolutions of a zero-dilated input) 10-20x slower
than a plain stride-1 convolution of the same size (jax-ml/jax#23783). Each of the s*s
output phases of a stride-s transposed convolution is a stride-1 convolution of the
undilated input with a subset of the kernel taps, interleaved by depth-to-space. On
accelerators all phases run as one convolution; on the CPU as that convolution by
Winograd's algorithm (or, for a narrow output layer, as one matmul and an overlap-add).
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan.ops import common, winograd

Array = jax.Array


def _phase_conv(inputs: Array, kernel: Array, stride: int, features: int,
                conv: Callable[..., Array] = common.conv) -> Array:
  """All s*s output phases as one stride-1 convolution with s*s*features channels.

  Every phase gets the same window of T x T input offsets (T = ceil(k/s)), zeros where a
  phase has no tap: for k=5, s=2 that multiplies 36 taps where the layer needs 25. One
  plain convolution suits accelerators; on the CPU the same convolution by Winograd's
  algorithm (`conv=winograd.winograd_conv`, 4x fewer multiplies) is the fastest.
  """
  tap_map, d_min, d_max = common.transpose_tap_map(kernel.shape[0], stride)
  taps, in_features = tap_map.shape[0], inputs.shape[-1]
  phase_kernel = common.gather_taps(kernel, tap_map, tap_map)  # [T, T, s, s, in, out]
  phase_kernel = phase_kernel.transpose(0, 1, 4, 2, 3, 5).reshape(
      taps, taps, in_features, stride * stride * features)
  phases = conv(inputs, phase_kernel, [(-d_min, d_max)] * 2)  # [N, H, W, s*s*out]
  return phases.reshape(*inputs.shape[:3], stride, stride, features)


def _phase_taps(kernel_size: int, stride: int) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
  """Per output phase p: its kernel taps in offset order, and its (lowest, highest) input
  offset, from `common.transpose_tap_map`. A phase reads a contiguous window of offsets
  (the window slides with the phase); (0, -1) and no taps when the stride leaves it none."""
  tap_map, d_min, _ = common.transpose_tap_map(kernel_size, stride)
  taps, windows = [], []
  for p in range(stride):
    offsets = np.flatnonzero(tap_map[:, p] < kernel_size)
    assert len(offsets) == 0 or np.all(np.diff(offsets) == 1), (kernel_size, stride)
    taps.append(tap_map[offsets, p])
    windows.append((offsets[0] + d_min, offsets[-1] + d_min) if len(offsets) else (0, -1))
  return taps, windows


def _phase_convs(kernel_size: int, stride: int):
  """(p, q, row taps, column taps, padding) of each output phase (p, q) that has taps:
  phase (p, q) reads input offsets window[p] x window[q] through kernel taps
  taps[p] x taps[q] (`_phase_taps`), as one stride-1 `common.conv` with that padding."""
  taps, windows = _phase_taps(kernel_size, stride)
  for p, (row_taps, (row_lo, row_hi)) in enumerate(zip(taps, windows)):
    for q, (col_taps, (col_lo, col_hi)) in enumerate(zip(taps, windows)):
      if len(row_taps) and len(col_taps):
        yield p, q, row_taps, col_taps, [(-row_lo, row_hi), (-col_lo, col_hi)]


def _per_phase_convs(inputs: Array, kernel: Array, stride: int, features: int) -> Array:
  """Each output phase as its own stride-1 convolution, with exactly that phase's taps.

  For k=5, s=2 the four convolutions have 3x3, 3x2, 2x3 and 2x2 taps: the layer's 25
  multiplies per input pixel, none on a padding zero, and no patch tensors (XLA's
  convolution windows the input itself). Phases without taps (stride > kernel) are zero.
  """
  phases = [[jnp.zeros((*inputs.shape[:3], features), inputs.dtype)] * stride
            for _ in range(stride)]
  for p, q, row_taps, col_taps, padding in _phase_convs(kernel.shape[0], stride):
    phases[p][q] = common.conv(inputs, kernel[row_taps[:, None], col_taps[None, :]], padding)
  return jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=3)  # [N, H, W, s, s, F]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _per_phase_convs_cpu(inputs: Array, kernel: Array, stride: int, features: int) -> Array:
  """`_per_phase_convs`, with its kernel gradients from `common.batch_minor` inputs (CPU
  only: the layouts it pins are XLA:CPU's, and XLA's own gradients are fast on
  accelerators)."""
  return _per_phase_convs(inputs, kernel, stride, features)


def _per_phase_convs_cpu_fwd(inputs, kernel, stride, features):
  return _per_phase_convs(inputs, kernel, stride, features), (inputs, kernel)


def _per_phase_convs_cpu_bwd(stride, features, residuals, cotangent):
  """XLA's input gradient of each phase's convolution, summed; the kernel gradients of all
  phases from one `common.batch_minor` copy of the inputs, each tap from the phase that
  has it."""
  del features
  inputs, kernel = residuals
  k = kernel.shape[0]
  inputs_batch_minor = common.batch_minor(inputs)
  input_grad, tap_grads = jnp.zeros_like(inputs), {}
  for p, q, row_taps, col_taps, padding in _phase_convs(k, stride):
    phase_cotangent = cotangent[:, :, :, p, q]
    phase_kernel = kernel[row_taps[:, None], col_taps[None, :]]
    _, input_vjp = jax.vjp(lambda x, w=phase_kernel, pad=padding: common.conv(x, w, pad), inputs)
    input_grad += input_vjp(phase_cotangent)[0]
    grad = common.conv_kernel_grad(inputs_batch_minor, phase_cotangent,
                                   phase_kernel.shape[:2], padding)
    for i, row in enumerate(row_taps):
      for j, col in enumerate(col_taps):
        tap_grads[row, col] = grad[i, j]
  # Each tap belongs to exactly one phase (tests/test_ops.py), so stacking them is the
  # whole kernel gradient.
  kernel_grad = jnp.stack([jnp.stack([tap_grads[a, b] for b in range(k)]) for a in range(k)])
  return input_grad, kernel_grad.astype(kernel.dtype)


_per_phase_convs_cpu.defvjp(_per_phase_convs_cpu_fwd, _per_phase_convs_cpu_bwd)


def _col2im(inputs: Array, kernel: Array, stride: int, features: int) -> Array:
  """The output pixels directly: inputs @ kernel, then the taps overlap-added (col2im).

  [N*H*W, in] @ [in, k*k*out] gives every (tap, output channel) of every input pixel in
  one matmul, the layer's exact multiplies; tap (a, b) of input pixel m lands on output
  s*m + pad_a - (a, b) (see `common.transpose_tap_map`), so each tap is a zero-interleaving
  `lax.pad` (negative padding crops) and the taps are summed. The column matrix is
  k*k*out wide: this pays off for narrow outputs only.
  """
  batch, height, width, in_features = inputs.shape
  k = kernel.shape[0]
  pad_a = common.transpose_pad_before(k, stride)
  columns = inputs.reshape(-1, in_features) @ kernel.transpose(2, 0, 1, 3).reshape(
      in_features, k * k * features)
  # One slice per tap by `lax.split`, whose transpose is one concatenate: indexing
  # columns[..., a, b, :] instead transposes to 25 zero-pads summed, which XLA fuses into
  # a loop that evaluates all 25 for every element of the columns' gradient.
  taps = [tap.reshape(batch, height, width, features)
          for tap in jax.lax.split(columns, [features] * (k * k), axis=1)]
  zero = jnp.zeros((), columns.dtype)
  outputs = 0
  for a in range(k):
    for b in range(k):
      low_h, low_w = pad_a - a, pad_a - b
      outputs += jax.lax.pad(taps[a * k + b], zero, [
          (0, 0, 0), (low_h, stride - 1 - low_h, stride - 1),
          (low_w, stride - 1 - low_w, stride - 1), (0, 0, 0)])
  return outputs


# col2im's overlap-add is a memory-bound pass over its column tensor, H*W*k*k*features
# values per example: it wins for the 3-channel image layers (19,200) and loses from the
# baseline's first layer (51,200) on (docs/performance.md).
_COL2IM_MAX_COLUMNS = 32_768


class SubPixelConvTranspose(common.SquareConv):
  """`nn.ConvTranspose(features, (k, k), (s, s), padding='SAME')`, without dilated inputs.

  Parameters are `kernel` [k, k, in, features] and `bias` [features], as in the Flax
  layer (with its default `transpose_kernel=False`). `method` picks how:

  * 'phase_conv': one stride-1 convolution for all output phases (`_phase_conv`);
  * 'per_phase': one stride-1 convolution per output phase, exact taps (`_per_phase_convs`);
  * 'col2im': one matmul, then the taps overlap-added (`_col2im`);
  * 'winograd': 'phase_conv''s convolution by `winograd.winograd_conv` (4x fewer multiplies);
  * 'auto' (default): 'phase_conv' on accelerators; on the CPU 'col2im' when its column
    tensor is small (`_COL2IM_MAX_COLUMNS`), else 'winograd' ('per_phase' when
    `winograd` is False).

  Each method's time per layer on the CPU is in docs/performance.md.
  """
  method: str = 'auto'

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    inputs, kernel, bias = self._parameters(inputs)
    method = self.method
    if method == 'auto':
      k = self.kernel_size
      columns = inputs.shape[1] * inputs.shape[2] * k * k * self.features
      window = len(common.transpose_tap_map(k, self.strides)[0])  # 'phase_conv''s taps per axis
      method = ('phase_conv' if jax.default_backend() != 'cpu' else
                'col2im' if columns <= _COL2IM_MAX_COLUMNS else
                'winograd' if self._winograd_pays(inputs.shape[-1], (window, window))
                else 'per_phase')
    if method == 'col2im':
      outputs = _col2im(inputs, kernel, self.strides, self.features)
    elif method == 'winograd':
      outputs = common.depth_to_space(_phase_conv(inputs, kernel, self.strides, self.features,
                                                  conv=winograd.winograd_conv))
    elif method in ('phase_conv', 'per_phase'):
      phase_fn = (_phase_conv if method == 'phase_conv' else
                  _per_phase_convs_cpu if jax.default_backend() == 'cpu' else _per_phase_convs)
      outputs = common.depth_to_space(phase_fn(inputs, kernel, self.strides, self.features))
    else:
      raise ValueError(f"Unknown SubPixelConvTranspose method {method!r}; use 'auto', "
                       "'phase_conv', 'per_phase', 'winograd' or 'col2im'.")
    return outputs + bias if bias is not None else outputs
