"""The fast layers compute exactly the Flax layers' function, gradients included."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import layers


def _assert_same_function(fast, reference, inputs):
  """Same outputs, input gradients and kernel gradients, to 1e-5 relative."""
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
  np.testing.assert_allclose(fast_out, ref_out, rtol=1e-5, atol=1e-5 * np.abs(ref_out).max())
  for fast_grad, ref_grad in zip(jax.tree_util.tree_leaves(fast_grads),
                                 jax.tree_util.tree_leaves(ref_grads)):
    np.testing.assert_allclose(fast_grad, ref_grad, rtol=1e-5,
                               atol=1e-5 * np.abs(ref_grad).max())


@pytest.mark.parametrize('method', ['phase_conv', 'per_phase', 'col2im', 'auto'])
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
  fast = layers.SubPixelConvTranspose(out_ch, kernel, stride, method=method)
  _assert_same_function(fast, reference, inputs)


@pytest.mark.parametrize('kernel,stride', [(5, 2), (4, 2), (3, 2), (3, 3), (7, 3), (5, 1), (2, 3)])
def test_per_phase_taps_cover_every_tap_once(kernel, stride):
  """The per-phase convolutions multiply each kernel tap exactly once and never a padding
  zero: the CPU path does the layer's k*k multiplies per input pixel."""
  taps, windows = layers._phase_taps(kernel, stride)
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


def test_auto_method_on_cpu_picks_by_column_size():
  """The seed designs' layers get the measured fastest CPU method (see the class docstring)."""
  def picked(in_shape, features):
    module = layers.SubPixelConvTranspose(features, 5, 2, use_bias=False)
    jaxpr = jax.make_jaxpr(lambda x: module.init_with_output(jax.random.PRNGKey(0), x))(
        jnp.zeros(in_shape))
    # per_phase is one convolution per output phase; col2im convolves nothing.
    return {0: 'col2im', 4: 'per_phase'}[_count_primitive(jaxpr.jaxpr, 'conv_general_dilated')]
  assert picked((1, 16, 16, 128), 3) == 'col2im'     # recap's image layer
  assert picked((1, 16, 16, 64), 3) == 'col2im'      # baseline's image layer
  assert picked((1, 4, 4, 256), 128) == 'per_phase'  # baseline's first layer
  assert picked((1, 8, 8, 256), 128) == 'per_phase'  # recap's second layer


def test_subpixel_rejects_unknown_method():
  with pytest.raises(ValueError, match="Unknown SubPixelConvTranspose method 'fft'"):
    layers.SubPixelConvTranspose(4, 5, 2, method='fft').init(
        jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))


_STRIDED_CONV_REWRITES = [layers.SpaceToDepthConv, layers.SubPixelGradConv]


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
  np.testing.assert_array_equal(jax.jit(layers._batch_minor)(x), x.transpose(3, 1, 2, 0))
  np.testing.assert_array_equal(layers._batch_minor(x), x.transpose(3, 1, 2, 0))
  compiled = jax.jit(layers._batch_minor).lower(x).compile().as_text()
  assert 'f32[3,5,6,4]{3,2,1,0}' in compiled
