"""The DCGAN family (the two seed designs): exact Keras parameter counts, the model
contract, live gradients; the family registry."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import baseline, recap
from gan import models
from gan.losses import non_saturating
from gan.models import dcgan

# (trainable, BatchNorm statistics) as the seed's Keras model.summary() counts them.
SEED_COUNTS = {
    'baseline': {'G': (1_446_976, 8_576), 'D': (217_985, 0)},
    'recap': {'G': (2_885_760, 8_960), 'D': (218_241, 256)},
}
CONFIGS = {'baseline': baseline.get_config, 'recap': recap.get_config}


def _count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))


def _init(name, conv_transpose_impl='subpixel'):
  config = CONFIGS[name]()
  config.model.dcgan.conv_transpose_impl = conv_transpose_impl
  generator, discriminator = models.build_models(config)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 100))
  g_vars = generator.init(jax.random.PRNGKey(1), z, None, train=False)
  images = generator.apply(g_vars, z, None, train=False)
  d_vars = discriminator.init(jax.random.PRNGKey(2), images, None, train=False)
  return generator, discriminator, g_vars, d_vars, z


@pytest.mark.parametrize('name', ['baseline', 'recap'])
@pytest.mark.parametrize('impl', ['subpixel', 'flax'])
def test_parameter_counts_match_the_seed(name, impl):
  _, _, g_vars, d_vars, _ = _init(name, impl)
  assert (_count(g_vars['params']), _count(g_vars.get('batch_stats', {}))) == SEED_COUNTS[name]['G']
  assert (_count(d_vars['params']), _count(d_vars.get('batch_stats', {}))) == SEED_COUNTS[name]['D']


@pytest.mark.parametrize('name', ['baseline', 'recap'])
def test_output_shapes_and_ranges(name):
  generator, discriminator, g_vars, d_vars, z = _init(name)
  images = generator.apply(g_vars, z, None, train=False)
  assert images.shape == (4, 32, 32, 3) and images.dtype == jnp.float32
  assert float(jnp.abs(images).max()) <= 1.0
  logits = discriminator.apply(d_vars, images, None, train=False)
  assert logits.shape == (4,) and logits.dtype == jnp.float32
  spec = models.spec_of(CONFIGS[name]())
  assert (spec.image_shape, spec.num_classes, spec.conditional) == ((32, 32, 3), 10, False)


@pytest.mark.parametrize('name', ['baseline', 'recap'])
def test_an_unconditional_family_ignores_labels_by_contract(name):
  generator, discriminator, g_vars, d_vars, z = _init(name)
  labels = jnp.arange(4, dtype=jnp.int32)
  images = generator.apply(g_vars, z, None, train=False)
  np.testing.assert_array_equal(generator.apply(g_vars, z, labels, train=False), images)
  np.testing.assert_array_equal(discriminator.apply(d_vars, images, labels, train=False),
                                discriminator.apply(d_vars, images, None, train=False))


@pytest.mark.parametrize('name', ['baseline', 'recap'])
def test_every_parameter_gets_a_finite_nonzero_gradient(name):
  generator, discriminator, g_vars, d_vars, z = _init(name)
  real = jax.random.uniform(jax.random.PRNGKey(3), (4, 32, 32, 3), minval=-1, maxval=1)
  rngs = {'dropout': jax.random.PRNGKey(4)}

  def d_logits(d_params, images):
    return discriminator.apply({**d_vars, 'params': d_params}, images, None, train=True,
                               mutable=['batch_stats'], rngs=rngs)[0]

  def g_objective(g_params):
    fake, _ = generator.apply({**g_vars, 'params': g_params}, z, None, train=True,
                              mutable=['batch_stats'])
    return non_saturating.g_loss(d_logits(d_vars['params'], fake))

  def d_objective(d_params):
    fake = generator.apply(g_vars, z, None, train=False)
    return non_saturating.d_loss(d_logits(d_params, real), d_logits(d_params, fake))

  for grads in (jax.grad(g_objective)(g_vars['params']), jax.grad(d_objective)(d_vars['params'])):
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
      name_ = jax.tree_util.keystr(path)
      assert np.all(np.isfinite(grad)), name_
      assert np.any(grad != 0), f'{name_} gets no gradient'


def test_fast_and_flax_generators_compute_the_same_function():
  generator, _, g_vars, _, z = _init('recap', 'subpixel')
  reference, _, _, _, _ = _init('recap', 'flax')
  np.testing.assert_allclose(generator.apply(g_vars, z, None, train=False),
                             reference.apply(g_vars, z, None, train=False), atol=1e-5)


@pytest.mark.parametrize('impl', sorted(dcgan.STRIDED_CONV_IMPLS))
def test_fast_and_flax_discriminators_agree_with_gradients(impl):
  """Train mode (BatchNorm on batch statistics): logits, parameter and image gradients."""
  _, _, _, d_vars, _ = _init('recap')
  images = jax.random.uniform(jax.random.PRNGKey(3), (4, 32, 32, 3), minval=-1, maxval=1)

  def logits_and_grads(strided_conv_impl):
    config = recap.get_config()
    config.model.dcgan.strided_conv_impl = strided_conv_impl
    _, discriminator = models.build_models(config)

    def objective(params, images):
      logits, _ = discriminator.apply({**d_vars, 'params': params}, images, None, train=True,
                                      mutable=['batch_stats'])
      return jnp.sum(jnp.sin(logits)), logits

    (_, logits), grads = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(
        d_vars['params'], images)
    return logits, grads

  fast, reference = logits_and_grads(impl), logits_and_grads('flax')
  # One tolerance scale for all leaves: Conv_1's bias gradient is zero up to rounding
  # (BatchNorm follows it), so its own scale would be rounding noise.
  scale = max(float(np.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(reference))
  for got, want in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_unknown_family_is_refused():
  config = recap.get_config()
  config.model.name = 'stylegan9'
  with pytest.raises(ValueError, match="Unknown model family.*'dcgan'"):
    models.build_models(config)
  assert models.problems(config) == [
      "model.name='stylegan9' is no known family; use one of ['dcgan', 'resnet', "
      "'sngan_cnn']."]


def test_a_family_reads_and_validates_only_its_own_block():
  config = recap.get_config()
  config.model.dcgan.G.channels = (256,)  # 16x16 images, but CIFAR-10 is 32x32.
  config.model.dcgan.D.dropout = 1.5
  problems = models.problems(config)
  assert len(problems) == 2 and all(p.startswith('model.dcgan.') for p in problems)
  assert any('the data are (32, 32, 3)' in p for p in problems)
  from configs import sngan_cnn
  config = sngan_cnn.get_config()  # A family with no conditional networks.
  config.model.conditional = True
  assert models.problems(config) == [
      "model.conditional=True but family 'sngan_cnn' takes no labels."]


def test_a_family_registers_once():
  with pytest.raises(ValueError, match='registered twice'):
    models.register('dcgan')(dcgan.build)


def test_keras_initialisation():
  """Glorot-uniform kernels (bounded by sqrt(6 / (fan_in + fan_out))), zero biases."""
  _, _, g_vars, d_vars, _ = _init('baseline')
  dense = d_vars['params']['Dense_0']
  assert float(jnp.abs(dense['kernel']).max()) <= np.sqrt(6 / (8192 + 1))
  assert float(jnp.abs(dense['bias']).max()) == 0.0
  kernel = g_vars['params']['ConvTranspose_0']['kernel']  # [5, 5, 256, 128]
  limit = np.sqrt(6 / (25 * 256 + 25 * 128))
  assert float(jnp.abs(kernel).max()) <= limit
  assert float(jnp.abs(kernel).max()) > 0.9 * limit  # Uniform up to the bound, not normal.


@pytest.mark.parametrize('name', ['baseline', 'recap'])
def test_winograd_setting_reaches_every_wide_layer(name):
  """`config.model.dcgan.winograd` decides how the wide layers run on the CPU: by Winograd
  (no XLA convolution left but D's 3-channel first layer) or by the exact-tap
  convolutions (G's per-phase: 4 a layer; D's two strided ones), with the same
  parameters and, to Winograd's rounding, the same function."""
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 100))
  outputs = {}
  for winograd in (True, False):
    config = CONFIGS[name]()
    config.model.dcgan.winograd = winograd
    generator, discriminator = models.build_models(config)
    g_vars = generator.init(jax.random.PRNGKey(1), z, None, train=False)
    images = generator.apply(g_vars, z, None, train=False)
    d_vars = discriminator.init(jax.random.PRNGKey(2), images, None, train=False)
    convs = [str(jax.make_jaxpr(lambda v, x, m=m: m.apply(v, x, None, train=False))(v, x)).count(
        'conv_general_dilated') for m, v, x in ((generator, g_vars, z),
                                                (discriminator, d_vars, images))]
    assert convs == ([0, 1] if winograd else [4 * len(config.model.dcgan.G.channels), 2])
    outputs[winograd] = (images, discriminator.apply(d_vars, images, None, train=False))
  for fast, exact in zip(outputs[True], outputs[False]):
    np.testing.assert_allclose(fast, exact, atol=1e-4 * float(np.abs(exact).max()))


def _sn_discriminator(name='recap'):
  config = CONFIGS[name]()
  config.model.dcgan.D.spectral_norm = True
  _, discriminator = models.build_models(config)
  images = jax.random.uniform(jax.random.PRNGKey(3), (8, 32, 32, 3), minval=-1, maxval=1)
  variables = discriminator.init(jax.random.PRNGKey(2), images, None, train=False)
  return discriminator, variables, images


def _sigmas(spectral_norm) -> dict:
  """{layer name: sigma} of the spectral norm's power iteration."""
  flat = {'/'.join(k.key for k in path): v
          for path, v in jax.tree_util.tree_leaves_with_path(spectral_norm)}
  return {key.split('/')[1]: float(v) for key, v in flat.items() if key.endswith('/sigma')}


def test_spectral_norm_finds_each_kernels_largest_singular_value():
  """After enough power iterations (one a train-mode call), each layer's sigma is within
  5% of numpy's largest singular value of its kernel as a [-1, out] matrix: the kernel D
  uses, kernel / sigma, has spectral norm 1."""
  discriminator, variables, images = _sn_discriminator()
  stats = variables['spectral_norm']
  for _ in range(30):
    _, updates = discriminator.apply({**variables, 'spectral_norm': stats}, images, None,
                                     train=True, mutable=['batch_stats', 'spectral_norm'])
    stats = updates['spectral_norm']
  sigmas = _sigmas(stats)
  assert sorted(sigmas) == ['Conv_0', 'Conv_1', 'Dense_0']  # Every layer with a kernel.
  for layer, sigma in sigmas.items():
    kernel = np.asarray(variables['params'][layer]['kernel'])
    largest = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert abs(largest / sigma - 1) < 0.05, (layer, largest, sigma)


def test_spectral_norm_iterates_in_train_mode_only():
  discriminator, variables, images = _sn_discriminator('baseline')  # No BatchNorm in D.
  _, inference = discriminator.apply(variables, images, None, train=False,
                                     mutable=['spectral_norm'])
  chex.assert_trees_all_equal(inference['spectral_norm'], variables['spectral_norm'])
  _, trained = discriminator.apply(variables, images, None, train=True,
                                   mutable=['spectral_norm'],
                                   rngs={'dropout': jax.random.PRNGKey(0)})
  assert _sigmas(trained['spectral_norm']) != _sigmas(variables['spectral_norm'])
  assert 'batch_stats' not in variables  # A D without BatchNorm keeps no statistics.
  # The parameters and their count are the design's: spectral norm adds statistics only.
  assert _count(variables['params']) == SEED_COUNTS['baseline']['D'][0]
