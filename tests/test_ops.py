"""The fast layers compute exactly the Flax layers' function, gradients included."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import ops
from gan.ops import common, subpixel, winograd


# Winograd's F(4x4, 3x3) rounds differently from a direct convolution: in float32 its
# outputs and gradients agree with XLA's to ~2e-5 of their largest value (measured at
# the designs' sizes); a wrong tap or phase would be off by O(1).
WINOGRAD_TOL = 1e-4


def _assert_same_function(fast, reference, inputs, tol=1e-5):
  """Same outputs, input gradients and kernel gradients, to `tol` relative (elementwise,
  and of each tensor's largest value)."""
  variables = reference.init(jax.random.PRNGKey(1), inputs)
  assert jax.tree_util.tree_structure(fast.init(jax.random.PRNGKey(1), inputs)) == \
      jax.tree_util.tree_structure(variables)
  cotangent = None

  def loss(module, variables, inputs):
    out = module.apply(variables, inputs)
    return jnp.sum(out * cotangent), out

  ref_out = reference.apply(variables, inputs)
  cotangent = jax.random.normal(jax.random.PRNGKey(2), ref_out.shape)
  (_, fast_out), fast_grads = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(
      fast, variables, inputs)
  (_, ref_out), ref_grads = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(
      reference, variables, inputs)
  assert fast_out.shape == ref_out.shape
  np.testing.assert_allclose(fast_out, ref_out, rtol=tol, atol=tol * np.abs(ref_out).max())
  for fast_grad, ref_grad in zip(jax.tree_util.tree_leaves(fast_grads),
                                 jax.tree_util.tree_leaves(ref_grads)):
    np.testing.assert_allclose(fast_grad, ref_grad, rtol=tol,
                               atol=tol * np.abs(ref_grad).max())


@pytest.mark.parametrize('method', ['phase_conv', 'per_phase', 'col2im', 'winograd', 'auto'])
@pytest.mark.parametrize('kernel,stride,size,in_ch,out_ch', [
    (5, 2, 4, 8, 16),    # The DCGAN layers: k5, s2.
    (5, 2, 8, 16, 3),
    (4, 2, 5, 3, 4),     # Even kernel, odd size.
    (3, 2, 3, 3, 4),
    (3, 3, 4, 2, 5),     # Stride 3.
    (5, 1, 4, 3, 2),     # Stride 1 degenerates to a plain convolution.
    (2, 3, 3, 2, 3),     # Stride above the kernel size: a phase with no taps.
])
def test_subpixel_conv_transpose_equals_flax(method, kernel, stride, size, in_ch, out_ch):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, in_ch))
  reference = nn.ConvTranspose(out_ch, (kernel, kernel), (stride, stride), padding='SAME')
  fast = ops.SubPixelConvTranspose(out_ch, kernel, stride, method=method)
  _assert_same_function(fast, reference, inputs,
                        tol=WINOGRAD_TOL if method == 'winograd' else 1e-5)


@pytest.mark.parametrize('winograd', [True, False])
def test_subpixel_conv_transpose_equals_flax_at_a_design_layer(winograd):
  """Baseline G's middle layer (128 -> 64 channels, 8x8 -> 16x16), batch 4, where 'auto'
  picks Winograd on the CPU, or the exact per-phase convolutions without it."""
  inputs = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 128))
  reference = nn.ConvTranspose(64, (5, 5), (2, 2), padding='SAME')
  fast = ops.SubPixelConvTranspose(64, 5, 2, winograd=winograd)
  _assert_same_function(fast, reference, inputs, tol=WINOGRAD_TOL if winograd else 1e-5)


@pytest.mark.parametrize('taps', [1, 2, 3, 4, 5])
def test_winograd_transforms_compute_the_correlation(taps):
  """1-D F(m, r), m = 6 - r + 1: A^T [(G g) * (B^T d)] is the r-tap correlation of every
  input tile d, exactly in float64; the 2-D transforms are the Kronecker squares."""
  tile = winograd.TILE_INPUT - taps + 1
  a2, g2, b2 = winograd.transforms(tile, taps)
  rng = np.random.default_rng(taps)
  d = rng.standard_normal((tile + taps - 1,) * 2)
  g = rng.standard_normal((taps, taps))
  y = (a2 @ ((g2 @ g.ravel()) * (b2 @ d.ravel()))).reshape(tile, tile)
  want = np.array([[np.sum(d[i:i + taps, j:j + taps] * g) for j in range(tile)]
                   for i in range(tile)])
  np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('size,taps,padding', [
    ((8, 8), 3, [(1, 1), (1, 1)]),     # The designs' 3x3 'same' convolutions.
    ((4, 4), 3, [(1, 1), (1, 1)]),     # One tile.
    ((7, 10), 3, [(1, 1), (0, 2)]),    # Outputs not a multiple of the tile; uneven pads.
    ((6, 6), 2, [(0, 1), (1, 0)]),
    ((5, 5), 5, [(2, 2), (2, 2)]),
    ((3, 3), 1, [(0, 0), (0, 0)]),
])
def test_winograd_conv_equals_xla_conv(size, taps, padding):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, *size, 5))
  kernel = jax.random.normal(jax.random.PRNGKey(1), (taps, taps, 5, 7))
  got = winograd.winograd_conv(inputs, kernel, padding)
  want = common.conv(inputs, kernel, padding)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=WINOGRAD_TOL * np.abs(want).max())


def test_winograd_conv_refuses_what_it_cannot_compute():
  inputs = jnp.zeros((1, 8, 8, 2))
  with pytest.raises(ValueError, match='non-negative padding'):
    winograd.winograd_conv(inputs, jnp.zeros((3, 3, 2, 2)), [(-1, 1), (1, 1)])
  with pytest.raises(ValueError, match='at most 5x5'):
    winograd.winograd_conv(inputs, jnp.zeros((7, 7, 2, 2)), [(3, 3), (3, 3)])


@pytest.mark.parametrize('kernel,stride', [(5, 2), (4, 2), (3, 2), (3, 3), (7, 3), (5, 1), (2, 3)])
def test_per_phase_taps_cover_every_tap_once(kernel, stride):
  """The per-phase convolutions multiply each kernel tap exactly once and never a padding
  zero: the CPU path does the layer's k*k multiplies per input pixel."""
  taps, windows = subpixel._phase_taps(kernel, stride)
  assert sorted(np.concatenate(taps)) == list(range(kernel))
  assert [hi - lo + 1 for lo, hi in windows] == [len(t) for t in taps]


def _count_primitive(jaxpr, name: str) -> int:
  """Equations of primitive `name` in a jaxpr, inside custom-VJP and other sub-jaxprs too."""
  count = 0
  for eqn in jaxpr.eqns:
    count += eqn.primitive.name == name
    for param in eqn.params.values():
      sub = getattr(param, 'jaxpr', param)  # A ClosedJaxpr holds its Jaxpr as .jaxpr.
      if hasattr(sub, 'eqns'):
        count += _count_primitive(sub, name)
  return count


def _picked(module, in_shape) -> str:
  """Which CPU method `module` ran, told by its primitives: per_phase is one convolution
  per output phase and subpixel_grad one (its custom VJP's backward is not traced here);
  col2im is one matmul; Winograd four (input, kernel and output transforms, products)."""
  jaxpr = jax.make_jaxpr(lambda x: module.init_with_output(jax.random.PRNGKey(0), x))(
      jnp.zeros(in_shape)).jaxpr
  counts = (_count_primitive(jaxpr, 'conv_general_dilated'),
            _count_primitive(jaxpr, 'dot_general'))
  return {(0, 1): 'col2im', (4, 0): 'per_phase', (0, 4): 'winograd',
          (1, 0): 'subpixel_grad'}[counts]


@pytest.mark.parametrize('winograd', [True, False])
def test_auto_method_on_cpu_picks_by_layer_size(winograd):
  """The seed designs' layers get the measured fastest CPU method (see the class
  docstrings), and the exact-tap ones without `winograd`."""
  def picked(in_shape, features, layer):
    return _picked(layer(features, 5, 2, use_bias=False, winograd=winograd), in_shape)
  wide = 'winograd' if winograd else 'per_phase'
  transpose = ops.SubPixelConvTranspose
  assert picked((1, 16, 16, 128), 3, transpose) == 'col2im'     # recap's image layer
  assert picked((1, 16, 16, 64), 3, transpose) == 'col2im'      # baseline's image layer
  assert picked((1, 4, 4, 256), 128, transpose) == wide         # baseline's first layer
  assert picked((1, 8, 8, 256), 128, transpose) == wide         # recap's second layer
  strided = ops.SubPixelGradConv
  assert picked((1, 32, 32, 3), 64, strided) == 'subpixel_grad'  # D's first layer
  assert picked((1, 16, 16, 64), 128, strided) == ('winograd' if winograd else 'subpixel_grad')


def test_subpixel_rejects_unknown_method():
  with pytest.raises(ValueError, match="Unknown SubPixelConvTranspose method 'fft'"):
    ops.SubPixelConvTranspose(4, 5, 2, method='fft').init(
        jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))


_STRIDED_CONV_REWRITES = [ops.SpaceToDepthConv, ops.SubPixelGradConv]


@pytest.mark.parametrize('layer', _STRIDED_CONV_REWRITES)
@pytest.mark.parametrize('kernel,stride,height,width', [
    (5, 2, 8, 8), (4, 2, 8, 8), (3, 2, 6, 6), (5, 2, 32, 32),
    (3, 3, 9, 9),     # Stride 3.
    (5, 2, 8, 16),    # Not square.
])
def test_strided_conv_rewrites_equal_flax(layer, kernel, stride, height, width):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, height, width, 3))
  reference = nn.Conv(4, (kernel, kernel), (stride, stride), padding='SAME')
  _assert_same_function(layer(4, kernel, stride), reference, inputs)


@pytest.mark.parametrize('method', ['xla', 'subpixel_grad', 'winograd'])
@pytest.mark.parametrize('kernel,stride,height,width', [
    (5, 2, 8, 8), (4, 2, 8, 8), (3, 2, 6, 6), (3, 3, 9, 9), (5, 2, 8, 16)])
def test_subpixel_grad_conv_methods_equal_flax(method, kernel, stride, height, width):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, height, width, 3))
  reference = nn.Conv(4, (kernel, kernel), (stride, stride), padding='SAME')
  _assert_same_function(ops.SubPixelGradConv(4, kernel, stride, method=method), reference,
                        inputs, tol=WINOGRAD_TOL if method == 'winograd' else 1e-5)


@pytest.mark.parametrize('layer', _STRIDED_CONV_REWRITES)
def test_strided_conv_rewrites_equal_flax_at_a_design_layer(layer):
  """D's second layer (64 -> 128 channels, 16x16 -> 8x8), batch 4: Winograd on the CPU."""
  inputs = jax.random.normal(jax.random.PRNGKey(0), (4, 16, 16, 64))
  reference = nn.Conv(128, (5, 5), (2, 2), padding='SAME')
  _assert_same_function(layer(128, 5, 2), reference, inputs, tol=WINOGRAD_TOL)


def test_subpixel_grad_conv_rejects_unknown_method():
  with pytest.raises(ValueError, match="Unknown SubPixelGradConv method 'fft'"):
    ops.SubPixelGradConv(4, 5, 2, method='fft').init(
        jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))


@pytest.mark.parametrize('layer', _STRIDED_CONV_REWRITES)
def test_strided_conv_rewrites_reject_indivisible_size(layer):
  inputs = jnp.zeros((1, 7, 7, 3))
  with pytest.raises(ValueError, match='divisible by the stride'):
    layer(4, 5, 2).init(jax.random.PRNGKey(0), inputs)


def test_batch_minor_is_the_transpose_and_keeps_its_two_copies():
  """`_batch_minor` is [N, H, W, C] -> [C, H, W, N] exactly; its speed rests on XLA
  materialising the [H, W, C, N] intermediate in row-major layout (a jaxlib that dropped
  the layout constraint would silently bring back the slow single transpose)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 5, 6))
  np.testing.assert_array_equal(jax.jit(common.batch_minor)(x), x.transpose(3, 1, 2, 0))
  np.testing.assert_array_equal(common.batch_minor(x), x.transpose(3, 1, 2, 0))
  compiled = jax.jit(common.batch_minor).lower(x).compile().as_text()
  assert 'f32[3,5,6,4]{3,2,1,0}' in compiled
