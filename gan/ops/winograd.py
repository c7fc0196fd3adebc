"""Winograd's minimal filtering F(4x4, 3x3): a stride-1 convolution with 4x fewer multiplies.

The CPU paths of `gan.ops.subpixel` and `gan.ops.strided` run their wide convolutions
this way (on the CPU only; accelerators keep XLA's convolutions). It agrees with XLA's
convolution to ~2e-5 of the output's scale in float32: rounding, not a different
function; the layers' `winograd=False` keeps the exact-tap paths.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@functools.lru_cache
def transforms(tile: int, taps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


# The layers' CPU 'auto' choices take Winograd from this many input channels: each tile's
# transform is a memory-bound pass, and the matmuls must be wide enough to pay for it (D's
# 3-channel first layer loses, its 64-channel second layer wins: docs/performance.md).
MIN_IN_FEATURES = 32


# Winograd tiles of this many input samples per axis (tile + taps - 1): the transforms'
# interpolation points are then 0, +-1, +-2 and infinity, whose constants keep float32
# rounding near 2e-5; larger tiles save more multiplies and lose precision fast.
TILE_INPUT = 6


def winograd_conv(inputs: Array, kernel: Array, padding: list[tuple[int, int]]) -> Array:
  """`common.conv(inputs, kernel, padding)` (stride 1) by Winograd's F(tile x tile, r x r).

  The output is cut into tile x tile blocks, tile = 6 - r + 1 (`TILE_INPUT`,
  4 for a 3x3 kernel, which is what the CPU paths run); each block's 6 x 6 input tile is
  transformed (B2), multiplied position by position with the transformed kernel (G2) as
  (tile + r - 1)^2 independent [blocks, in] @ [in, out] matmuls, and transformed back
  (A2). F(4x4, 3x3) does 36 multiplies per 16 outputs where the convolution does 144:
  4x fewer, and its gradients (JAX differentiates the same three steps) are the same
  kind of matmuls. The price is rounding: the transforms' constants grow with the tile,
  and F(4x4, 3x3) in float32 agrees with XLA's convolution to ~2e-5 of the output's
  largest value (tests/test_ops.py). Padding is (before, after) >= 0 per axis; the
  kernel is square, at most 5 x 5.
  """
  taps = kernel.shape[0]
  if any(low < 0 or high < 0 for low, high in padding) or kernel.shape[1] != taps or taps >= 6:
    raise ValueError('winograd_conv needs non-negative padding and a square kernel of at '
                     f'most 5x5; got padding {padding}, kernel {kernel.shape}.')
  n = TILE_INPUT
  tile = n - taps + 1
  a2, g2, b2 = (jnp.asarray(t, inputs.dtype) for t in transforms(tile, taps))
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
