"""Strided convolutions rewritten as stride-1 convolutions, for speed on XLA:CPU.

XLA:CPU runs transposed convolutions, and the input gradients of strided convolutions
(both are convolutions of a zero-dilated input), 10-20x slower than a plain stride-1
convolution of the same size (jax-ml/jax#23783). The layers here compute exactly the
function of the Flax layer they replace, with the same parameter names and shapes, so a
checkpoint or a test can swap one for the other:

* `SubPixelConvTranspose` == `nn.ConvTranspose(padding='SAME')`: each of the s*s output
  phases of a stride-s transposed convolution is a stride-1 convolution of the undilated
  input with a subset of the kernel taps, interleaved by depth-to-space. On accelerators
  all phases run as one convolution; on the CPU as that convolution by Winograd's
  algorithm (or, for a narrow output layer, as one matmul and an overlap-add).
* `SubPixelGradConv` == `nn.Conv(strides=s, padding='SAME')`: XLA's own convolution on
  accelerators; on the CPU, for wide inputs, a stride-1 convolution of the space-to-depth
  input by Winograd's algorithm, and for narrow ones XLA's forward with a custom VJP that
  computes the input gradient phase by phase, as one stride-1 convolution of the output
  gradient and depth-to-space.
* `SpaceToDepthConv` == `nn.Conv(strides=s, padding='SAME')`: the input is folded into
  s*s times the channels by space-to-depth and convolved at stride 1 by XLA, so its input
  gradient is a stride-1 convolution too (measured no faster than Flax's layer).

Winograd's minimal filtering F(4x4, 3x3) (`_winograd_conv`) multiplies 4x less than the
convolution it computes and is differentiated by JAX into the same kind of matmuls; it
agrees with XLA's convolution to ~2e-5 of the output's scale in float32 (rounding, not a
different function; layers' `winograd=False` keeps the exact-tap paths). The recap step
on the 2-core CPU: 804 -> 556 ms. The custom VJPs' kernel gradients are XLA's own
convolution, fed a batch-minor copy of the inputs made in two cache-friendly transposes
(`_batch_minor`) instead of XLA's one slow transpose: the recap step 3.4% faster.

The small (taps, phases) index maps are computed once in numpy at trace time; the kernel
of the stride-1 convolution is gathered from the stored kernel inside the step, so
gradients reach the stored kernel through the gather.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.layout import Layout, with_layout_constraint

Array = jax.Array

# Keras' default kernel initialiser; symmetric in fan-in and fan-out, so it gives the
# same distribution for a Conv2DTranspose kernel stored as (k, k, out, in) and for a
# Flax kernel stored as (k, k, in, out).
glorot_uniform = nn.initializers.glorot_uniform()


def _transpose_pad_before(kernel_size: int, stride: int) -> int:
  """pad_a: the zeros `lax.conv_transpose(padding='SAME')` puts before the dilated input."""
  if stride > kernel_size - 1:
    return kernel_size - 1
  return -(-(kernel_size + stride - 2) // 2)


def _transpose_tap_map(kernel_size: int, stride: int) -> tuple[np.ndarray, int, int]:
  """Kernel index for each (tap, output phase) of a SAME transposed convolution.

  `lax.conv_transpose(padding='SAME')` dilates the input by `stride`, pads it by
  (pad_a, pad_b) and correlates it with the kernel, so output o = s*m + p reads input
  m + d through kernel tap k whenever p + k - pad_a = s*d. Returns the map
  [taps, phases] -> k (`kernel_size` where no tap exists), and the lowest and highest
  input offset d.
  """
  pad_a = _transpose_pad_before(kernel_size, stride)
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


def _conv(inputs: Array, kernel: Array, padding: str | list[tuple[int, int]],
          stride: int = 1) -> Array:
  """XLA's own NHWC convolution; padding 'SAME' or (before, after) per spatial axis."""
  return jax.lax.conv_general_dilated(
      inputs, kernel, window_strides=(stride, stride), padding=padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@functools.lru_cache
def _winograd_transforms(tile: int, taps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The 2-D transforms of Winograd's minimal filtering F(tile x tile, taps x taps).

  In 1-D, F(m, r) computes m outputs of an r-tap correlation, y = A^T [(G g) * (B^T d)],
  from an n = m + r - 1 sample input tile d with n multiplies instead of m * r. A^T and G
  are Vandermonde-like in n - 1 interpolation points and infinity (Lavin & Gray 2016):
  0, 1, -1, 2, -2, ... B^T is then the unique solution of the linear equations "y is the
  correlation for every d and g", solved here and checked to be exact. In 2-D the tile is
  n x n and each transform is the Kronecker square of the 1-D one. Returns (A2 [m*m, n*n],
  G2 [n*n, r*r], B2 [n*n, n*n]) in float64.
  """
  n = tile + taps - 1
  points = [0.0] + [sign * float(k) for k in range(1, n) for sign in (1, -1)][:n - 2]
  a_t, g = np.zeros((tile, n)), np.zeros((n, taps))
  for j, p in enumerate(points):
    a_t[:, j] = p ** np.arange(tile)
    g[j] = p ** np.arange(taps) / np.prod([p - q for q in points if q != p])
  a_t[-1, -1] = g[-1, -1] = 1.0  # The point at infinity.
  # sum_j a_t[i, j] g[j, k] b_t[j, t] = [t == i + k] for all i, k, t: linear in b_t.
  equations = np.zeros((tile, taps, n, n, n))
  for i in range(tile):
    for k in range(taps):
      for t in range(n):
        equations[i, k, t, :, t] = a_t[i] * g[:, k]
  targets = (np.arange(n)[None, None, :] ==
             np.arange(tile)[:, None, None] + np.arange(taps)[None, :, None]).astype(float)
  equations, targets = equations.reshape(-1, n * n), targets.ravel()
  b_t = np.linalg.lstsq(equations, targets, rcond=None)[0]
  assert np.abs(equations @ b_t - targets).max() < 1e-9, (tile, taps)
  b_t = b_t.reshape(n, n)
  return np.kron(a_t, a_t), np.kron(g, g), np.kron(b_t, b_t)


# The layers' CPU 'auto' choices take Winograd from this many input channels (each tile's
# transform is a memory-bound pass; the matmuls must be wide enough to pay for it).
# 2-core CPU, forward + both gradients: D's 64-channel layer 126 ms of CPU against 177
# ms; its 3-channel first layer 63 against 45.
_WINOGRAD_MIN_IN_FEATURES = 32


# Winograd tiles of this many input samples per axis (tile + taps - 1): the transforms'
# interpolation points are then 0, +-1, +-2 and infinity, whose constants keep float32
# rounding near 2e-5; larger tiles save more multiplies and lose precision fast.
_WINOGRAD_TILE_INPUT = 6


def _winograd_conv(inputs: Array, kernel: Array, padding: list[tuple[int, int]]) -> Array:
  """`_conv(inputs, kernel, padding)` (stride 1) by Winograd's F(tile x tile, r x r).

  The output is cut into tile x tile blocks, tile = 6 - r + 1 (`_WINOGRAD_TILE_INPUT`,
  4 for a 3x3 kernel, which is what the CPU paths run); each block's 6 x 6 input tile is
  transformed (B2), multiplied position by position with the transformed kernel (G2) as
  (tile + r - 1)^2 independent [blocks, in] @ [in, out] matmuls, and transformed back
  (A2). F(4x4, 3x3) does 36 multiplies per 16 outputs where the convolution does 144:
  4x fewer, and its gradients (JAX differentiates the same three steps) are the same
  kind of matmuls. The price is rounding: the transforms' constants grow with the tile,
  and F(4x4, 3x3) in float32 agrees with XLA's convolution to ~2e-5 of the output's
  largest value (tests/test_layers.py). Padding is (before, after) >= 0 per axis; the
  kernel is square, at most 5 x 5.
  """
  taps = kernel.shape[0]
  if any(low < 0 or high < 0 for low, high in padding) or kernel.shape[1] != taps or taps >= 6:
    raise ValueError('_winograd_conv needs non-negative padding and a square kernel of at '
                     f'most 5x5; got padding {padding}, kernel {kernel.shape}.')
  n = _WINOGRAD_TILE_INPUT
  tile = n - taps + 1
  a2, g2, b2 = (jnp.asarray(t, inputs.dtype) for t in _winograd_transforms(tile, taps))
  batch, height, width, in_features = inputs.shape
  out_h, out_w = (size + low + high - taps + 1
                  for size, (low, high) in zip((height, width), padding))
  blocks_h, blocks_w = -(-out_h // tile), -(-out_w // tile)
  padded = jnp.pad(inputs, ((0, 0),
                            (padding[0][0], padding[0][1] + blocks_h * tile - out_h),
                            (padding[1][0], padding[1][1] + blocks_w * tile - out_w), (0, 0)))
  # Overlapping tiles by one slice per block (its gradient: one pad per block, summed).
  tiles = jnp.stack([padded[:, tile * i:tile * i + n, tile * j:tile * j + n]
                     for i in range(blocks_h) for j in range(blocks_w)], axis=1)
  tiles = tiles.transpose(2, 3, 0, 1, 4).reshape(n * n, -1)  # [n*n, N*blocks*in]
  transformed = (b2 @ tiles).reshape(n * n, -1, in_features)
  transformed_kernel = (g2 @ kernel.reshape(taps * taps, -1)).reshape(n * n, in_features, -1)
  products = jnp.einsum('pbi,pio->pbo', transformed, transformed_kernel)
  out = (a2 @ products.reshape(n * n, -1)).reshape(tile, tile, batch, blocks_h, blocks_w, -1)
  out = out.transpose(2, 3, 0, 4, 1, 5).reshape(batch, blocks_h * tile, blocks_w * tile, -1)
  return out[:, :out_h, :out_w]


def _batch_minor(inputs: Array) -> Array:
  """[N, H, W, C] -> [C, H, W, N]: the layout XLA:CPU's kernel-gradient convolution reads.

  XLA's own transpose loops over the output in order, so each input cache line is read
  again for every channel it holds: D's [256, 16, 16, 64] activations took 16 ms on the
  2-core CPU. Two transposes via [H, W, C, N] each read blocks that stay in cache, but
  left to itself XLA fuses them back into the one slow loop, or moves the layout change
  into a single-threaded copy. Pinning [H, W, C, N] to its row-major layout keeps both as
  parallel loops: 4-9 ms in all for D's activations (10 + 3 ms with the copy).
  """
  hwcn = with_layout_constraint(inputs.transpose(1, 2, 3, 0), Layout((0, 1, 2, 3)))
  return hwcn.transpose(2, 0, 1, 3)


def _conv_kernel_grad(inputs_batch_minor: Array, cotangent: Array, kernel_size: tuple[int, int],
                      padding: list[tuple[int, int]], stride: int = 1) -> Array:
  """The kernel gradient of `_conv(inputs, kernel, padding, stride)`, from
  `_batch_minor(inputs)`: the convolution XLA's own gradient runs, without its transpose.

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
  # On the CPU, whether the 'auto' choices may run wide convolutions by Winograd's
  # algorithm (`_winograd_conv`); False keeps exact-tap convolutions.
  winograd: bool = True

  def _require_size_divisible_by_stride(self, inputs: Array) -> None:
    if inputs.shape[1] % self.strides or inputs.shape[2] % self.strides:
      raise ValueError(f'{type(self).__name__} needs height and width divisible by the '
                       f'stride {self.strides}; got input shape {inputs.shape}.')

  def _winograd_pays(self, in_features: int, window: tuple[int, int]) -> bool:
    """Whether 'auto' runs this layer's stride-1 convolution (`window` taps, from
    `in_features` channels of the layer's input) by Winograd: on the CPU, with
    `winograd` set, for a square window of at most 3 x 3 (what was measured) and from
    `_WINOGRAD_MIN_IN_FEATURES` input channels."""
    return (self.winograd and jax.default_backend() == 'cpu' and
            in_features >= _WINOGRAD_MIN_IN_FEATURES and window[0] == window[1] <= 3)

  def _space_to_depth_winograd_pays(self, inputs: Array) -> bool:
    """`_winograd_pays` for this strided layer's `_space_to_depth_conv` of `inputs`."""
    window = tuple(len(_strided_tap_map(self.kernel_size, self.strides, size)[0])
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


def _phase_conv(inputs: Array, kernel: Array, stride: int, features: int,
                conv: Callable[..., Array] = _conv) -> Array:
  """All s*s output phases as one stride-1 convolution with s*s*features channels.

  Every phase gets the same window of T x T input offsets (T = ceil(k/s)), zeros where a
  phase has no tap: for k=5, s=2 that multiplies 36 taps where the layer needs 25. One
  plain convolution suits accelerators; on the CPU the same convolution by Winograd's
  algorithm (`conv=_winograd_conv`, 4x fewer multiplies) is the fastest.
  """
  tap_map, d_min, d_max = _transpose_tap_map(kernel.shape[0], stride)
  taps, in_features = tap_map.shape[0], inputs.shape[-1]
  phase_kernel = _gather_taps(kernel, tap_map, tap_map)  # [T, T, s, s, in, out]
  phase_kernel = phase_kernel.transpose(0, 1, 4, 2, 3, 5).reshape(
      taps, taps, in_features, stride * stride * features)
  phases = conv(inputs, phase_kernel, [(-d_min, d_max)] * 2)  # [N, H, W, s*s*out]
  return phases.reshape(*inputs.shape[:3], stride, stride, features)


def _phase_taps(kernel_size: int, stride: int) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
  """Per output phase p: its kernel taps in offset order, and its (lowest, highest) input
  offset, from `_transpose_tap_map`. A phase reads a contiguous window of offsets (the
  window slides with the phase); (0, -1) and no taps when the stride leaves it none."""
  tap_map, d_min, _ = _transpose_tap_map(kernel_size, stride)
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
  taps[p] x taps[q] (`_phase_taps`), as one stride-1 `_conv` with that padding."""
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
    phases[p][q] = _conv(inputs, kernel[row_taps[:, None], col_taps[None, :]], padding)
  return jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=3)  # [N, H, W, s, s, F]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _per_phase_convs_cpu(inputs: Array, kernel: Array, stride: int, features: int) -> Array:
  """`_per_phase_convs`, with its kernel gradients from `_batch_minor` inputs (CPU only:
  the layouts it pins are XLA:CPU's, and XLA's own gradients are fast on accelerators)."""
  return _per_phase_convs(inputs, kernel, stride, features)


def _per_phase_convs_cpu_fwd(inputs, kernel, stride, features):
  return _per_phase_convs(inputs, kernel, stride, features), (inputs, kernel)


def _per_phase_convs_cpu_bwd(stride, features, residuals, cotangent):
  """XLA's input gradient of each phase's convolution, summed; the kernel gradients of all
  phases from one `_batch_minor` copy of the inputs, each tap from the phase that has it."""
  del features
  inputs, kernel = residuals
  k = kernel.shape[0]
  inputs_batch_minor = _batch_minor(inputs)
  input_grad, tap_grads = jnp.zeros_like(inputs), {}
  for p, q, row_taps, col_taps, padding in _phase_convs(k, stride):
    phase_cotangent = cotangent[:, :, :, p, q]
    phase_kernel = kernel[row_taps[:, None], col_taps[None, :]]
    _, input_vjp = jax.vjp(lambda x, w=phase_kernel, pad=padding: _conv(x, w, pad), inputs)
    input_grad += input_vjp(phase_cotangent)[0]
    grad = _conv_kernel_grad(inputs_batch_minor, phase_cotangent, phase_kernel.shape[:2],
                             padding)
    for i, row in enumerate(row_taps):
      for j, col in enumerate(col_taps):
        tap_grads[row, col] = grad[i, j]
  # Each tap belongs to exactly one phase (tests/test_layers.py), so stacking them is the
  # whole kernel gradient.
  kernel_grad = jnp.stack([jnp.stack([tap_grads[a, b] for b in range(k)]) for a in range(k)])
  return input_grad, kernel_grad.astype(kernel.dtype)


_per_phase_convs_cpu.defvjp(_per_phase_convs_cpu_fwd, _per_phase_convs_cpu_bwd)


def _col2im(inputs: Array, kernel: Array, stride: int, features: int) -> Array:
  """The output pixels directly: inputs @ kernel, then the taps overlap-added (col2im).

  [N*H*W, in] @ [in, k*k*out] gives every (tap, output channel) of every input pixel in
  one matmul, the layer's exact multiplies; tap (a, b) of input pixel m lands on output
  s*m + pad_a - (a, b) (see `_transpose_tap_map`), so each tap is a zero-interleaving
  `lax.pad` (negative padding crops) and the taps are summed. The column matrix is
  k*k*out wide: this pays off for narrow outputs only.
  """
  batch, height, width, in_features = inputs.shape
  k = kernel.shape[0]
  pad_a = _transpose_pad_before(k, stride)
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
# values per example. 2-core CPU: at 19,200 (the 3-channel image layers) col2im was 4x
# faster than 'per_phase' (`SubPixelConvTranspose`'s table); at 51,200 (baseline's
# first layer) per_phase made the baseline step 1.7% faster.
_COL2IM_MAX_COLUMNS = 32_768


def _depth_to_space(phases: Array) -> Array:
  """[N, H, W, s, s, C] phases -> [N, H*s, W*s, C] image."""
  batch, height, width, stride, _, features = phases.shape
  return phases.transpose(0, 1, 3, 2, 4, 5).reshape(
      batch, height * stride, width * stride, features)


class SubPixelConvTranspose(_SquareConv):
  """`nn.ConvTranspose(features, (k, k), (s, s), padding='SAME')`, without dilated inputs.

  Parameters are `kernel` [k, k, in, features] and `bias` [features], as in the Flax
  layer (with its default `transpose_kernel=False`). `method` picks how:

  * 'phase_conv': one stride-1 convolution for all output phases (`_phase_conv`);
  * 'per_phase': one stride-1 convolution per output phase, exact taps (`_per_phase_convs`);
  * 'col2im': one matmul, then the taps overlap-added (`_col2im`);
  * 'winograd': 'phase_conv''s convolution by `_winograd_conv` (4x fewer multiplies);
  * 'auto' (default): 'phase_conv' on accelerators; on the CPU 'col2im' when its column
    tensor is small (`_COL2IM_MAX_COLUMNS`), else 'winograd' ('per_phase' when
    `winograd` is False).

  Forward and backward at batch 256 on a 2-core CPU with `gan.cpu_defaults.XLA_FLAGS`, ms
  (phase_conv / per_phase / col2im), one layer alone: recap G's layers 248 / 192 / 227,
  488 / 386 / 501, 95 / 219 / 52; baseline G's 116 / 97 / 96, 126 / 111 / 176,
  55 / 80 / 21. In the train steps per_phase beat the earlier exact-tap patches-and-matmul
  method by 4% (recap) and 2% (baseline): it builds no patch tensors. Winograd, later
  (per_phase / winograd): recap G's two wide layers 296 / 179 and 153 / 97 ms (CPU time
  586 / 344 and 304 / 184 ms), baseline's 76 / 46 and 97 / 63; the recap step 22% faster.
  """
  method: str = 'auto'

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    inputs, kernel, bias = self._parameters(inputs)
    method = self.method
    if method == 'auto':
      k = self.kernel_size
      columns = inputs.shape[1] * inputs.shape[2] * k * k * self.features
      window = len(_transpose_tap_map(k, self.strides)[0])  # 'phase_conv''s taps per axis
      method = ('phase_conv' if jax.default_backend() != 'cpu' else
                'col2im' if columns <= _COL2IM_MAX_COLUMNS else
                'winograd' if self._winograd_pays(inputs.shape[-1], (window, window))
                else 'per_phase')
    if method == 'col2im':
      outputs = _col2im(inputs, kernel, self.strides, self.features)
    elif method == 'winograd':
      outputs = _depth_to_space(_phase_conv(inputs, kernel, self.strides, self.features,
                                            conv=_winograd_conv))
    elif method in ('phase_conv', 'per_phase'):
      phase_fn = (_phase_conv if method == 'phase_conv' else
                  _per_phase_convs_cpu if jax.default_backend() == 'cpu' else _per_phase_convs)
      outputs = _depth_to_space(phase_fn(inputs, kernel, self.strides, self.features))
    else:
      raise ValueError(f"Unknown SubPixelConvTranspose method {method!r}; use 'auto', "
                       "'phase_conv', 'per_phase', 'winograd' or 'col2im'.")
    return outputs + bias if bias is not None else outputs


def _space_to_depth_conv(inputs: Array, kernel: Array, stride: int,
                         conv: Callable[..., Array] = _conv) -> Array:
  """A SAME stride-s convolution as a stride-1 `conv` of the space-to-depth input.

  The input is folded into s*s times the channels, [N, H/s, W/s, s*s*in], and the kernel
  taps gathered to match (`_strided_tap_map`; zeros where a phase has no tap: 36 taps
  for a 5x5/2 kernel's 25), so that no gradient is a zero-dilated convolution.
  """
  batch, height, width, in_features = inputs.shape
  k, s = kernel.shape[0], stride
  row_map, row_min, row_max = _strided_tap_map(k, s, height)
  col_map, col_min, col_max = _strided_tap_map(k, s, width)
  phase_kernel = _gather_taps(kernel, row_map, col_map).reshape(
      len(row_map), len(col_map), s * s * in_features, kernel.shape[-1])
  folded = inputs.reshape(batch, height // s, s, width // s, s, in_features)
  folded = folded.transpose(0, 1, 3, 2, 4, 5).reshape(
      batch, height // s, width // s, s * s * in_features)
  return conv(folded, phase_kernel, [(-row_min, row_max), (-col_min, col_max)])


class SpaceToDepthConv(_SquareConv):
  """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')`, as a stride-1 conv
  of the space-to-depth input (`_space_to_depth_conv`): XLA's convolution, or on the CPU
  for wide inputs Winograd's (as `SubPixelGradConv` runs them).

  Parameters are `kernel` [k, k, in, features] and `bias` [features], as in the Flax
  layer. The input's height and width must be multiples of the stride.
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    self._require_size_divisible_by_stride(inputs)
    conv = _winograd_conv if self._space_to_depth_winograd_pays(inputs) else _conv
    inputs, kernel, bias = self._parameters(inputs)
    outputs = _space_to_depth_conv(inputs, kernel, self.strides, conv=conv)
    return outputs + bias if bias is not None else outputs


def _strided_conv_input_grad(cotangent: Array, kernel: Array, stride: int,
                             in_size: tuple[int, int]) -> Array:
  """The input gradient of a SAME stride-s `_conv`, phase by phase, with no zero-dilated input.

  Output o reads input s*(o + d) + p through tap k = tap_map[d, p] (`_strided_tap_map`),
  so input phase p at position m gets sum_d dy[m - d] @ kernel[k].T: one stride-1
  correlation of dy for all s*s phases (offsets flipped, in/out channels swapped), then
  depth-to-space.
  """
  k, s = kernel.shape[0], stride
  row_map, row_min, row_max = _strided_tap_map(k, s, in_size[0])
  col_map, col_min, col_max = _strided_tap_map(k, s, in_size[1])
  # Offset index j of the correlation reads dy[m + j - d_max], i.e. d = d_max - j.
  phase_kernel = _gather_taps(kernel, row_map[::-1], col_map[::-1])  # [Th, Tw, s, s, in, out]
  taps_h, taps_w, _, _, in_features, features = phase_kernel.shape
  phase_kernel = phase_kernel.transpose(0, 1, 5, 2, 3, 4).reshape(
      taps_h, taps_w, features, s * s * in_features)
  phases = _conv(cotangent, phase_kernel, [(row_max, -row_min), (col_max, -col_min)])
  return _depth_to_space(phases.reshape(*phases.shape[:3], s, s, in_features))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided_conv_subpixel_grad(inputs: Array, kernel: Array, stride: int) -> Array:
  return _conv(inputs, kernel, 'SAME', stride)


def _strided_conv_subpixel_grad_fwd(inputs, kernel, stride):
  return _conv(inputs, kernel, 'SAME', stride), (inputs, kernel)


def _strided_conv_subpixel_grad_bwd(stride, residuals, cotangent):
  inputs, kernel = residuals
  padding = jax.lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], (stride, stride),
                                    'SAME')
  kernel_grad = _conv_kernel_grad(_batch_minor(inputs), cotangent, kernel.shape[:2], padding,
                                  stride)
  input_grad = _strided_conv_input_grad(cotangent, kernel, stride, inputs.shape[1:3])
  return input_grad.astype(inputs.dtype), kernel_grad.astype(kernel.dtype)


_strided_conv_subpixel_grad.defvjp(_strided_conv_subpixel_grad_fwd,
                                   _strided_conv_subpixel_grad_bwd)


class SubPixelGradConv(_SquareConv):
  """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')` with a cheaper backward.

  Parameters as the Flax layer's; height and width must be multiples of the stride.
  `method` picks how:

  * 'xla': XLA's own convolution and gradients (what 'auto' picks on GPU/TPU);
  * 'subpixel_grad': XLA's forward and kernel gradient (the latter from `_batch_minor`
    inputs), and a custom VJP that computes the input gradient, which XLA:CPU computes
    as a convolution of the zero-dilated output gradient, phase by phase instead
    (`_strided_conv_input_grad`: 36 taps for a 5x5/2 kernel's 25, at XLA:CPU's full
    convolution speed). Recap train step, batch 256, 2-core CPU: 256-260 img/s with
    Flax's layer, 271-280 with this one (before `_batch_minor`);
  * 'winograd': `_space_to_depth_conv` by `_winograd_conv`, differentiated by JAX;
  * 'auto' (default): 'xla' on accelerators; on the CPU 'winograd' for inputs of at
    least `_WINOGRAD_MIN_IN_FEATURES` channels when `winograd` is set, else
    'subpixel_grad'.

  D's second layer (64 -> 128, 16x16, batch 256), forward + both gradients, 2-core CPU:
  subpixel_grad 90 ms (177 ms of CPU), winograd 68 ms (126); its 3-channel first layer
  23 ms (45) against 35 ms (63).
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
      outputs = _conv(inputs, kernel, 'SAME', self.strides)
    elif method == 'subpixel_grad':
      outputs = _strided_conv_subpixel_grad(inputs, kernel, self.strides)
    elif method == 'winograd':
      outputs = _space_to_depth_conv(inputs, kernel, self.strides, conv=_winograd_conv)
    else:
      raise ValueError(f"Unknown SubPixelGradConv method {method!r}; use 'auto', 'xla', "
                       "'subpixel_grad' or 'winograd'.")
    return outputs + bias if bias is not None else outputs
