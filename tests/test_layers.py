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


@pytest.mark.parametrize('kernel,stride,size,in_ch,out_ch', [
    (5, 2, 4, 8, 16),    # The DCGAN layers: k5, s2.
    (5, 2, 8, 16, 3),
    (4, 2, 5, 3, 4),     # Even kernel, odd size.
    (3, 2, 3, 3, 4),
    (3, 3, 4, 2, 5),     # Stride 3.
    (5, 1, 4, 3, 2),     # Stride 1 degenerates to a plain convolution.
])
def test_subpixel_conv_transpose_equals_flax(kernel, stride, size, in_ch, out_ch):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, in_ch))
  reference = nn.ConvTranspose(out_ch, (kernel, kernel), (stride, stride), padding='SAME')
  fast = layers.SubPixelConvTranspose(out_ch, kernel, stride)
  _assert_same_function(fast, reference, inputs)


def test_subpixel_matmul_path_equals_flax():
  """Enough output channels to take the patches @ matrix path on CPU."""
  features = layers._MATMUL_MIN_FEATURES // 4  # 4 phases -> that many matmul columns.
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 8))
  reference = nn.ConvTranspose(features, (5, 5), (2, 2), padding='SAME', use_bias=False)
  fast = layers.SubPixelConvTranspose(features, 5, 2, use_bias=False)
  _assert_same_function(fast, reference, inputs)


@pytest.mark.parametrize('kernel,stride,size', [(5, 2, 8), (4, 2, 8), (3, 2, 6), (5, 2, 32)])
def test_space_to_depth_conv_equals_flax(kernel, stride, size):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3))
  reference = nn.Conv(4, (kernel, kernel), (stride, stride), padding='SAME')
  fast = layers.SpaceToDepthConv(4, kernel, stride)
  _assert_same_function(fast, reference, inputs)


def test_space_to_depth_conv_rejects_indivisible_size():
  inputs = jnp.zeros((1, 7, 7, 3))
  with pytest.raises(ValueError, match='divisible by the stride'):
    layers.SpaceToDepthConv(4, 5, 2).init(jax.random.PRNGKey(0), inputs)
