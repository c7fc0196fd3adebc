"""Class-conditional G and D (issue 19): conditional BatchNorm, the projection term, BigGAN's
shared embedding, the contract with labels, class-balanced sampling, per-class metrics, the
grids with one named row per class, and the conditional configs' smoke runs."""

import json

import chex
import flax.linen as nn
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import loop, models, validation, visualize
from gan.config_files import load_config
from gan.metrics import per_class
from gan.models import conditioning
from gan.networks import Networks

CONDITIONAL_SPECS = ['configs/recap.py:diffaug,conditional', 'configs/sngan_projection.py',
                     'configs/biggan_cifar.py', 'configs/biggan_cifar.py:hier']


def _small(spec):
  """The config with narrow networks: the same code paths, seconds on a CPU."""
  config = load_config(spec)
  if config.model.name == 'resnet':
    config.model.resnet.G.channels = config.model.resnet.D.channels = 16
  return config


def _init(config, batch=6):
  networks = Networks(config)
  g_vars, d_vars = networks.init(jax.random.key(0))
  z = jax.random.normal(jax.random.key(1), (batch, config.model.latent_dim))
  images = jax.random.uniform(jax.random.key(2), (batch, 32, 32, 3), minval=-1, maxval=1)
  return networks, g_vars, d_vars, z, images


@pytest.mark.parametrize('spec', CONDITIONAL_SPECS)
def test_changing_only_the_label_changes_g_and_d(spec):
  networks, g_vars, d_vars, z, images = _init(_small(spec))
  labels = jnp.arange(6, dtype=jnp.int32)
  # Conditional BN starts as plain BN (gains 1, biases 0) and the projection as Xavier
  # noise; one update's worth of per-class perturbation makes every class differ in G.
  g_vars = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.1 * jax.random.normal(jax.random.key(len(str(path))), x.shape)
      if 'gain' in jax.tree_util.keystr(path) or 'Shared' in jax.tree_util.keystr(path) else x,
      g_vars)
  same = networks.generate(g_vars, z, labels)
  other = networks.generate(g_vars, z, (labels + 1) % 10)
  np.testing.assert_array_equal(same, networks.generate(g_vars, z, labels))
  assert np.abs(np.asarray(same - other)).reshape(6, -1).max(axis=1).min() > 1e-4
  logits = networks.discriminator.apply(d_vars, images, labels, train=False)
  other_logits = networks.discriminator.apply(d_vars, images, (labels + 1) % 10, train=False)
  assert logits.shape == (6,) and np.abs(np.asarray(logits - other_logits)).min() > 1e-6


@pytest.mark.parametrize('spec', ['configs/recap.py', 'configs/sngan_resnet.py'])
def test_an_unconditional_model_ignores_labels(spec):
  config = _small(spec)
  networks, g_vars, d_vars, z, images = _init(config)
  assert networks.labels(jax.random.key(0), 6) is None  # Nothing drawn, nothing passed.
  a, b = jnp.zeros(6, jnp.int32), jnp.arange(6, dtype=jnp.int32)
  np.testing.assert_array_equal(networks.generate(g_vars, z, a), networks.generate(g_vars, z, b))
  np.testing.assert_array_equal(networks.discriminator.apply(d_vars, images, a, train=False),
                                networks.discriminator.apply(d_vars, images, b, train=False))
  # No class parameters: the plain design's tree, so its checkpoints keep loading.
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path((g_vars, d_vars))]
  assert not [p for p in paths if any(k in p for k in ('Conditional', 'ClassEmbed', 'Shared'))]


@pytest.mark.parametrize('train', [True, False])
def test_conditional_batch_norm_with_one_class_is_batch_norm_with_its_gain(train):
  x = jax.random.normal(jax.random.key(0), (8, 4, 4, 5)) * 3 + 1
  gain = jax.random.uniform(jax.random.key(1), (1, 5), minval=0.5, maxval=2)
  bias = jax.random.normal(jax.random.key(2), (1, 5))
  labels = jnp.zeros(8, jnp.int32)
  stats = {'mean': jnp.full(5, 0.5), 'var': jnp.full(5, 2.0)}
  cbn = conditioning.ConditionalBatchNorm(1, use_running_average=not train, momentum=0.9)
  variables = {'params': {'gain': {'embedding': gain}, 'bias': {'embedding': bias}},
               'batch_stats': {'BatchNorm': stats}}
  out, cbn_stats = cbn.apply(variables, x, labels, mutable=['batch_stats'])
  bn = nn.BatchNorm(use_running_average=not train, momentum=0.9)
  expected, bn_stats = bn.apply({'params': {'scale': gain[0], 'bias': bias[0]},
                                 'batch_stats': stats}, x, mutable=['batch_stats'])
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(cbn_stats['batch_stats']['BatchNorm'], bn_stats['batch_stats'],
                              rtol=1e-6)


def test_conditional_batch_norm_gives_each_sample_its_class_gain_and_bias():
  x = jax.random.normal(jax.random.key(0), (6, 3))
  labels = jnp.array([0, 1, 2, 0, 1, 2])
  gain = jnp.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]])
  bias = -gain
  cbn = conditioning.ConditionalBatchNorm(3, use_running_average=False, epsilon=1e-5)
  out, _ = cbn.apply({'params': {'gain': {'embedding': gain}, 'bias': {'embedding': bias}},
                      'batch_stats': {'BatchNorm': {'mean': jnp.zeros(3), 'var': jnp.ones(3)}}},
                     x, labels, mutable=['batch_stats'])
  normalised = (x - x.mean(0)) / jnp.sqrt(x.var(0) + 1e-5)
  np.testing.assert_allclose(out, normalised * gain[labels] + bias[labels], rtol=1e-5, atol=1e-5)


class _Projection(nn.Module):
  spectral_norm: bool

  @nn.compact
  def __call__(self, h, labels, train):
    return conditioning.projection(h, labels, 4, self.spectral_norm, train)


@pytest.mark.parametrize('spectral_norm', [False, True])
def test_projection_equals_its_formula(spectral_norm):
  h = jnp.array([[1., 2., 0.], [0., -1., 3.], [2., 2., 2.]])
  labels = jnp.array([3, 0, 3])
  embed = jnp.array([[1., 0., 0.], [0., 1., 0.], [5., 5., 5.], [0.5, -1., 2.]])
  module = _Projection(spectral_norm)
  variables = module.init(jax.random.key(0), h, labels, train=False)
  variables = {**variables, 'params': {'ClassEmbed': {'embedding': embed}}}
  if spectral_norm:  # Converge the power iteration, then read in inference mode.
    for _ in range(30):
      _, updates = module.apply(variables, h, labels, train=True, mutable=['spectral_norm'])
      variables = {**variables, **updates}
    embed = embed / np.linalg.svd(np.asarray(embed), compute_uv=False)[0]
  out = module.apply(variables, h, labels, train=False)
  expected = [float(np.dot(embed[y], row)) for y, row in zip(labels, h)]
  np.testing.assert_allclose(out, expected, rtol=1e-4)


def test_biggan_conditions_each_block_on_its_chunk_of_z_and_the_shared_embedding():
  config = _small('configs/biggan_cifar.py:hier')
  networks, g_vars, _, z, _ = _init(config, batch=2)
  assert 'SharedEmbed' in g_vars['params']
  gains = g_vars['params']['GBlock_0']['BatchNorm_0']['gain']
  assert set(gains) == {'kernel'}  # A linear map of [embedding, chunk], no per-class table.
  assert gains['kernel'].shape == (128 + 32, 16)
  assert 'spectral_norm' in g_vars  # Spectral norm in G too.
  labels = jnp.array([1, 2])
  base = networks.generate(g_vars, z, labels)
  for chunk in range(4):  # The Dense layer's chunk and each block's.
    moved = z.at[:, 32 * chunk:32 * (chunk + 1)].add(1.0)
    assert np.abs(np.asarray(networks.generate(g_vars, moved, labels) - base)).max() > 1e-4


@pytest.mark.parametrize('edit, message', [
    (lambda c: setattr(c.model, 'conditional', False), 'G.shared_dim=128 is a class embedding'),
    (lambda c: setattr(c.model, 'latent_dim', 130), 'does not divide'),
    (lambda c: setattr(c.model.resnet, 'weight_init', 'he'), "weight_init='he' is unknown"),
])
def test_bad_conditioning_settings_are_named(edit, message):
  config = load_config('configs/biggan_cifar.py:hier')
  edit(config)
  assert any(message in problem for problem in models.problems(config))


def test_per_class_metric_on_an_unconditional_config_is_refused():
  config = load_config('configs/recap.py')
  config.eval.metrics = ('fid', 'per_class')
  with pytest.raises(ValueError, match="'per_class'.*model.conditional=True"):
    validation.validate_config(config, num_devices=1)


def test_balanced_labels_give_every_class_equally_often():
  networks = Networks(load_config('configs/recap.py:conditional'))
  labels = np.asarray(networks.balanced_labels(1000))
  assert np.bincount(labels, minlength=10).tolist() == [100] * 10
  drawn = np.asarray(networks.labels(jax.random.key(0), 10_000))
  assert drawn.min() == 0 and drawn.max() == 9 and np.bincount(drawn).min() > 900


def test_confusion_accuracy_and_intra_fid_on_hand_made_inputs():
  asked = np.array([0, 0, 1, 1, 2, 2])
  seen = np.array([0, 1, 1, 1, 0, 2])
  confusion = per_class.confusion_matrix(asked, seen, 3)
  assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
  np.testing.assert_allclose(per_class.class_accuracies(confusion), [0.5, 1.0, 0.5])
  rng = np.random.default_rng(0)
  features = rng.normal(size=(60, 4))
  labels = np.repeat(np.arange(3), 20)
  shifted = features + np.array([0, 3, 0])[labels][:, None]  # Class 1 moved by 3 per dim.
  fids = per_class.intra_fids(shifted, labels, features, labels, 3)
  np.testing.assert_allclose(fids, [0, 36, 0], atol=1e-6)  # |mu diff|^2 = 4 * 3^2.
  with pytest.raises(ValueError, match='class 2: 1 samples'):
    per_class.intra_fids(features[:41], labels[:41], features, labels, 3)


# SN-GAN projection's path is BigGAN's without the shared embedding (covered above).
@pytest.mark.parametrize('spec', ['configs/biggan_cifar.py:smoke',
                                  'configs/recap.py:diffaug,conditional,smoke'])
def test_conditional_smoke_runs_resume_exactly_with_class_rows(spec, tiny_cifar_dir, tmp_path):
  config = _small(spec)
  config.data.dir = str(tiny_cifar_dir)
  config.log.progress_bar = False
  config.log.tensorboard = False
  # One D update a G update: n_dis > 1 compiles an unrolled scan (minutes here) and is
  # tested in test_families and test_steps; the conditioning is what this test is for.
  config.train.n_dis = 1
  config.data.num_examples = 2 * config.train.batch_size
  straight = loop.train_and_evaluate(config, tmp_path / 'straight')
  loop.train_and_evaluate(config, tmp_path / 'resumed', stop_at_step=1)
  resumed = loop.train_and_evaluate(config, tmp_path / 'resumed')
  chex.assert_trees_all_equal(*(jax.tree_util.tree_leaves(jax.device_get(s))
                                for s in (straight, resumed)))
  records = [json.loads(line) for line in
             (tmp_path / 'resumed' / 'metrics.jsonl').read_text().splitlines()]
  assert all(np.isfinite(r['G/loss']) and np.isfinite(r['D/loss']) for r in records)
  # One row of grid_size samples per class, the class names in a margin on the left.
  grid = iio.imread(visualize.grid_files(tmp_path / 'straight')[-1][1])
  size = config.eval.grid_size
  assert grid.shape[0] == 10 * 34 + 2 and grid.shape[1] > size * 34 + 2


def test_an_acgan_d_sows_class_logits_and_its_logit_ignores_the_labels():
  networks, _, d_vars, _, images = _init(load_config('configs/recap.py:acgan'))
  assert networks.auxiliary_classifier
  labels = jnp.arange(6, dtype=jnp.int32)
  logits, _, classes = networks.discriminate_train_with_classes(
      d_vars['params'], {'batch_stats': d_vars['batch_stats'], 'spectral_norm': {}}, images,
      labels, jax.random.key(3))
  other, _, other_classes = networks.discriminate_train_with_classes(
      d_vars['params'], {'batch_stats': d_vars['batch_stats'], 'spectral_norm': {}}, images,
      (labels + 1) % 10, jax.random.key(3))
  assert classes.shape == (6, 10) and logits.shape == (6,)
  np.testing.assert_array_equal(logits, other)  # The class is D's output, not its input.
  np.testing.assert_array_equal(classes, other_classes)
  projection = Networks(load_config('configs/recap.py:conditional'))
  assert not projection.auxiliary_classifier


def test_the_acgan_loss_enters_both_networks_updates(tiny_cifar_dir):
  from gan import data, steps
  from gan.state import create_state
  results = {}
  for weight in (0.0, 1.0):
    config = load_config('configs/recap.py:acgan,smoke')  # The simultaneous rule.
    config.data.dir = str(tiny_cifar_dir)
    config.loss.class_weight = weight
    networks = Networks(config)
    images, labels = data.load(config.data)
    batch = {'image': jnp.asarray(images[:16]), 'label': jnp.asarray(labels[:16])}
    results[weight] = jax.jit(steps.make_step_fn(config, networks))(
        create_state(config, networks), batch)
  with_term, without = results[1.0][1], results[0.0][1]
  assert 'D/class_loss' in with_term and 'D/class_loss' not in without
  # Two cross-entropies of 10 classes from near-uniform logits: about 2 log 10.
  assert 3.0 < float(with_term['D/class_loss']) < 6.0
  for net in ('g', 'd'):  # Each network's update moved by the classification term.
    a = jax.tree_util.tree_leaves(getattr(results[1.0][0], net).params)
    b = jax.tree_util.tree_leaves(getattr(results[0.0][0], net).params)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b)), net
