"""The FID Inception (TF 2015-12-05 graph, pool3 features) in JAX, and its input pipeline.

`features(images_uint8)` reproduces the reference pipeline exactly:
  1. uint8 images [N, H, W, 3] (generator output is quantised to uint8 first, as the
     reference does: (x + 1) * 127.5, rounded, clipped);
  2. resized to 299x299 as TF1's `resize_bilinear(align_corners=False)`: the source
     coordinate of destination index j is j * H / 299, no half-pixel offset, edges clamped
     (`jax.image.resize` uses half-pixel centres: a different function);
  3. scaled to [-1, 0.9921875] = (x - 128) / 128;
  4. 94 convolutions, each followed by BatchNorm without scale (epsilon 1e-3, folded into
     the convolution here) and ReLU, in the Inception-v3 blocks of the TF graph;
  5. the 8x8 average pool: 2048 float32 features an image.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from gan import parallel
from gan.metrics import weights
from gan.ops import winograd

Array = jax.Array
SIZE = 299
BN_EPSILON = 1e-3


def resize_matrix(src: int, dst: int = SIZE) -> np.ndarray:
  """[dst, src] bilinear weights of TF1 resize_bilinear(align_corners=False)."""
  coords = np.arange(dst) * (src / dst)
  low = np.floor(coords).astype(int)
  high = np.minimum(low + 1, src - 1)
  frac = coords - low
  matrix = np.zeros((dst, src), np.float64)
  np.add.at(matrix, (np.arange(dst), low), 1 - frac)
  np.add.at(matrix, (np.arange(dst), high), frac)
  return matrix.astype(np.float32)


def preprocess(images: Array) -> Array:
  """uint8 [N, H, W, 3] -> float32 [N, 299, 299, 3] in [-1, 0.9921875]."""
  rows = jnp.asarray(resize_matrix(images.shape[1]))
  cols = jnp.asarray(resize_matrix(images.shape[2]))
  resized = jnp.einsum('ia,nabc,jb->nijc', rows, images.astype(jnp.float32), cols,
                       precision=jax.lax.Precision.HIGHEST)
  return (resized - 128.0) / 128.0


def prepare_params(arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """(arrays, static): BN folded into each kernel and a bias; strides and paddings apart,
  as Python ints, since they shape the computation."""
  params, static = {}, {}
  for key in arrays:
    if not key.endswith('/kernel'):
      continue
    path = key[:-len('/kernel')]
    scale = 1.0 / np.sqrt(arrays[f'{path}/var'].astype(np.float64) + BN_EPSILON)
    params[path] = {
        'kernel': (arrays[key] * scale).astype(np.float32),
        'bias': (arrays[f'{path}/beta'] - arrays[f'{path}/mean'] * scale).astype(np.float32),
    }
    pad_h, pad_w = (int(p) for p in arrays[f'{path}/padding'])
    static[path] = (int(arrays[f'{path}/stride']), ((pad_h, pad_h), (pad_w, pad_w)))
  return params, static


def _max_pool(x, stride, pad):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                               ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool_exclude_pad(x):
  """3x3, stride 1, padding 1, dividing by the number of real (not padded) inputs."""
  window = ((0, 0), (1, 1), (1, 1), (0, 0))
  sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), window)
  counts = jax.lax.reduce_window(jnp.ones(x.shape[1:3], x.dtype), 0.0, jax.lax.add, (3, 3),
                                 (1, 1), window[1:3])
  return sums / counts[None, :, :, None]


def _conv2d(x: Array, kernel: Array, stride: int, padding, fast: bool) -> Array:
  """NHWC convolution; the 1x1 ones (40 of the 94) as a plain matmul, which XLA:CPU runs
  faster with equal outputs (docs/performance.md); with `fast`, the wide 3x3 stride-1 ones
  (the stem's three, the mixed blocks', two thirds of the network's multiplies) by
  Winograd's F(4x4, 3x3) (`gan.ops.winograd`: 4x fewer multiplies, float32 rounding)."""
  taps_h, taps_w, channels, features = kernel.shape
  if taps_h == taps_w == stride == 1:
    batch, height, width, _ = x.shape
    return (x.reshape(-1, channels) @ kernel.reshape(channels, features)).reshape(
        batch, height, width, features)
  if fast and stride == 1 and taps_h == taps_w == 3 and channels >= winograd.MIN_IN_FEATURES:
    return winograd.winograd_conv(x, kernel, list(padding))
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def make_network(static: dict, fast: bool | None = None):
  """params -> (x [N, 299, 299, 3] -> features [N, 2048]). `fast` (default: on the CPU)
  runs the wide 3x3 convolutions by Winograd's algorithm; False keeps XLA's convolution
  everywhere (the exact-tap reference the fast path is tested against)."""
  if fast is None:
    fast = jax.default_backend() == 'cpu'

  def forward(params: dict, x: Array) -> Array:
    def conv(path, x):
      stride, padding = static[path]
      y = _conv2d(x, params[path]['kernel'], stride, padding, fast)
      return jax.nn.relu(y + params[path]['bias'])

    def chain(path, x, length):
      for i in range(length):
        x = conv(f'{path}/conv' + (f'_{i}' if i else ''), x)
      return x

    def block_a(p, x):
      return [conv(f'{p}/conv', x), chain(f'{p}/tower', x, 2), chain(f'{p}/tower_1', x, 3),
              conv(f'{p}/tower_2/conv', _avg_pool_exclude_pad(x))]

    def block_b(p, x):
      return [conv(f'{p}/conv', x), chain(f'{p}/tower', x, 3), _max_pool(x, 2, 0)]

    def block_c(p, x):
      return [conv(f'{p}/conv', x), chain(f'{p}/tower', x, 3), chain(f'{p}/tower_1', x, 5),
              conv(f'{p}/tower_2/conv', _avg_pool_exclude_pad(x))]

    def block_d(p, x):
      return [chain(f'{p}/tower', x, 2), chain(f'{p}/tower_1', x, 4), _max_pool(x, 2, 0)]

    def block_e(p, x, pool):
      a = conv(f'{p}/tower_conv', x)
      b = conv(f'{p}/tower_1_conv_1', conv(f'{p}/tower_1_conv', x))
      return [conv(f'{p}/conv', x), conv(f'{p}/tower_mixed_conv', a),
              conv(f'{p}/tower_mixed_conv_1', a), conv(f'{p}/tower_1_mixed_conv', b),
              conv(f'{p}/tower_1_mixed_conv_1', b), conv(f'{p}/tower_2_conv', pool(x))]

    x = conv('conv_2', conv('conv_1', conv('conv', x)))
    x = _max_pool(x, 2, 0)
    x = _max_pool(conv('conv_4', conv('conv_3', x)), 2, 0)
    blocks = ([block_a] * 3 + [block_b] + [block_c] * 4 + [block_d] +
              [functools.partial(block_e, pool=_avg_pool_exclude_pad),
               functools.partial(block_e, pool=lambda x: _max_pool(x, 1, 1))])
    for i, block in enumerate(blocks):
      x = jnp.concatenate(block('mixed' + (f'_{i}' if i else ''), x), axis=-1)
    return x.mean(axis=(1, 2))  # The 8x8 average pool: [N, 2048].

  return forward


class FeatureExtractor:
  """uint8 images -> pool3 features, jitted once for a fixed batch size (rounded up to a
  multiple of the device count), each batch split over every device (`parallel.OverMesh`)."""

  def __init__(self, batch_size: int = 25, arrays: dict[str, np.ndarray] | None = None,
               mesh=None, fast: bool | None = None):
    params, static = prepare_params(arrays if arrays is not None else weights.load())
    network = make_network(static, fast)
    self._features = parallel.OverMesh(
        lambda params, images: network(params, preprocess(images)), mesh)
    self.batch_size = self._features.batch_size(batch_size)
    self._params = self._features.put(params)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 -> [N, 2048] float32, in batches (the last one padded)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'Expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}.')
    out = []
    starts = range(0, len(images), self.batch_size)
    # A progress bar for long extractions only (10k images take minutes on a CPU).
    for start in tqdm.tqdm(starts, desc='Inception features', unit='batch', leave=False,
                           disable=len(starts) < 20):
      chunk = images[start:start + self.batch_size]
      padded = np.concatenate([chunk, np.zeros((self.batch_size - len(chunk), *chunk.shape[1:]),
                                                np.uint8)]) if len(chunk) < self.batch_size else chunk
      out.append(self._features(self._params, padded)[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, 2048), np.float32)
