"""Adding a family, a loss, an augmentation or a metric is one registration and a config."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan import augment, evaluate, loop, losses, metrics, models
from gan.networks import Networks


class _TinyGenerator(nn.Module):
  """z (and a class embedding) -> Dense -> tanh image."""
  width: int
  image_shape: tuple
  num_classes: int

  @nn.compact
  def __call__(self, z, labels, train):
    x = nn.Dense(self.width)(z)
    if labels is not None:
      x = x + nn.Embed(self.num_classes, self.width)(labels)
    x = nn.BatchNorm(use_running_average=not train)(nn.relu(x))
    return jnp.tanh(nn.Dense(int(np.prod(self.image_shape)))(x)).reshape(
        -1, *self.image_shape).astype(jnp.float32)


class _TinyProjectionDiscriminator(nn.Module):
  """A linear logit plus a projection <embed(y), h> (Miyato & Koyama 2018) when labelled."""
  width: int
  num_classes: int

  @nn.compact
  def __call__(self, images, labels, train):
    h = nn.relu(nn.Dense(self.width)(images.reshape(images.shape[0], -1)))
    logits = nn.Dense(1)(h)[:, 0]
    if labels is not None:
      logits = logits + jnp.sum(nn.Embed(self.num_classes, self.width, name='embed')(labels) * h,
                                axis=-1)
    return logits


@pytest.fixture
def tiny_family():
  """Registers family 'tiny' for the test only (conditional when the config says so)."""

  @models.register('tiny', conditional=True,
                   validate=lambda block, spec: [] if block.width > 0 else ['width must be > 0.'])
  def build(block, spec):
    return (_TinyGenerator(block.width, spec.image_shape, spec.num_classes),
            _TinyProjectionDiscriminator(block.width, spec.num_classes))

  yield 'tiny'
  del models.FAMILIES['tiny']


def _tiny_config(smoke_config, conditional):
  smoke_config.model.name = 'tiny'
  smoke_config.model.conditional = conditional
  smoke_config.model.tiny = ml_collections.ConfigDict({'width': 16})
  return smoke_config


@pytest.mark.parametrize('conditional', [False, True])
def test_a_family_registered_in_a_test_trains_end_to_end(tiny_family, smoke_config, tmp_path,
                                                         conditional):
  config = _tiny_config(smoke_config, conditional)
  state = loop.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 12
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert len(records) == 12 and all(np.isfinite(r['G/loss']) for r in records)
  assert (tmp_path / 'progress.gif').exists()
  # The conditional model's label embeddings learn: the labels of the real batches reach
  # D, and the labels drawn for fakes reach G and D.
  assert ('embed' in state.d.params) == conditional
  if conditional:
    init_d = Networks(config).init(jax.random.PRNGKey(0))[1]
    assert state.d.params['embed']['embedding'].shape == (10, 16)
    assert not np.allclose(state.d.params['embed']['embedding'],
                           init_d['params']['embed']['embedding'])


def test_a_family_validates_its_block(tiny_family, smoke_config, tmp_path):
  config = _tiny_config(smoke_config, False)
  config.model.tiny.width = 0
  with pytest.raises(ValueError, match='model.tiny.width must be > 0'):
    loop.train_and_evaluate(config, tmp_path)


def test_conditional_labels_change_the_output_and_unconditional_ones_are_none(tiny_family,
                                                                              smoke_config):
  networks = Networks(_tiny_config(smoke_config, True))
  g_vars, d_vars = networks.init(jax.random.PRNGKey(0))
  z = networks.latents(jax.random.PRNGKey(1), 4)
  labels = networks.labels(jax.random.PRNGKey(2), 4)
  assert labels.dtype == jnp.int32 and labels.shape == (4,)
  assert not np.allclose(networks.generate(g_vars, z, labels),
                         networks.generate(g_vars, z, (labels + 1) % 10))
  np.testing.assert_array_equal(networks.balanced_labels(12), np.arange(12) % 10)
  unconditional = Networks(_tiny_config(smoke_config, False))
  assert unconditional.labels(jax.random.PRNGKey(2), 4) is None
  assert unconditional.balanced_labels(4) is None


def test_a_loss_registers_by_name(smoke_config, tmp_path):
  @losses.register('hinge_test')
  def make():
    return losses.Loss(g_loss=lambda fake: -fake.mean(),
                       d_loss=lambda real, fake: (jax.nn.relu(1 - real).mean()
                                                  + jax.nn.relu(1 + fake).mean()))
  try:
    smoke_config.loss.name = 'hinge_test'
    smoke_config.train.num_epochs = 1
    loop.train_and_evaluate(smoke_config, tmp_path)
    first = json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[0])
    assert first['D/loss'] >= 0  # Hinge: a sum of two relus, unlike BCE's value here.
  finally:
    del losses.LOSSES['hinge_test']


def test_flip_mirrors_about_half_the_images_and_is_differentiable():
  images = jax.random.normal(jax.random.PRNGKey(0), (400, 4, 4, 3))
  flipped = augment.AUGMENTATIONS['flip'](jax.random.PRNGKey(1), images)
  mirrored = np.all(np.isclose(flipped, images[:, :, ::-1]), axis=(1, 2, 3))
  kept = np.all(np.isclose(flipped, images), axis=(1, 2, 3))
  assert np.all(mirrored ^ kept) and 160 < mirrored.sum() < 240
  grad = jax.grad(lambda x: augment.AUGMENTATIONS['flip'](jax.random.PRNGKey(1), x).sum())(images)
  np.testing.assert_array_equal(grad, np.ones_like(grad))  # A permutation of pixels.


def test_an_augmentation_policy_composes_in_order():
  augment.register('plus_one_test')(lambda key, x: x + 1)
  augment.register('double_test')(lambda key, x: 2 * x)
  try:
    apply = augment.make_policy('plus_one_test, double_test')
    np.testing.assert_array_equal(apply(jax.random.PRNGKey(0), jnp.zeros((1, 2, 2, 3))), 2)
    assert augment.make_policy('') is None
    assert augment.problems('plus_one_test,nope') == [
        "augment.policy names 'nope', no known augmentation; use names from "
        f"{sorted(augment.AUGMENTATIONS)}."]
  finally:
    del augment.AUGMENTATIONS['plus_one_test'], augment.AUGMENTATIONS['double_test']


def test_a_metric_registers_by_name_and_is_measured_by_the_evaluator(smoke_config, tmp_path):
  """A metric that needs no Inception: the evaluator builds only what its metrics use."""
  @metrics.register('mean_pixel_test')
  def make(context):
    return lambda samples: {'eval/mean_pixel': float(samples.images.mean()),
                            'eval/count': len(samples.images)}
  try:
    smoke_config.eval.metrics = ('mean_pixel_test',)
    smoke_config.eval.every = '1 epoch'
    smoke_config.eval.num_samples = 7
    smoke_config.eval.batch_size = 3
    loop.train_and_evaluate(smoke_config, tmp_path)
    evals = [r for r in map(json.loads, (tmp_path / 'metrics.jsonl').read_text().splitlines())
             if 'eval/mean_pixel' in r]
    assert [r['epoch'] for r in evals] == [1.0, 2.0]
    assert all(r['eval/count'] == 7 and 0 <= r['eval/mean_pixel'] <= 255 for r in evals)
    record = evaluate.evaluate_run(tmp_path, 7, 'test', batch_size=3)
    assert record['eval/mean_pixel'] == evals[-1]['eval/mean_pixel']  # Same samples.
  finally:
    del metrics.METRICS['mean_pixel_test']
