"""The stronger designs' families and configs (issue 18): parameter counts pinned against
public references, the model contract, variants, smoke runs that resume exactly, and the
wall-clock budget of equal-budget comparisons."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import loop, models, summary
from gan.config_files import load_config

# Trainable parameters (BatchNorm's scale and offset included; BatchNorm statistics and
# spectral norm's vectors are not parameters).
REFERENCE_COUNTS = {
    # pfnet-research/sngan_projection (the SN-GAN authors' Chainer code, gen_models/
    # resnet_32.py with ch=256, dis_models/snresnet_32.py with ch=128) and
    # w86763777/pytorch-gan-collections (source/models/sngan.py, ResGenerator32 and
    # ResDiscriminator32): G 4,276,739, D 1,053,824 (the linear head has no bias; Mimicry's
    # SNGANDiscriminator32 has one: 1,053,825).
    'configs/sngan_resnet.py': (4_276_739, 1_053_824),
    # The SN-GAN paper's Table 3 standard CNN, counted from its layer list: G = Dense
    # 128 -> 8192 (+ bias) + BN + ConvT 4x4 512->256, 256->128, 128->64 (+ biases, BNs)
    # + Conv 3x3 64->3; D = 7 convolutions (+ biases) + Dense 8192 -> 1.
    'configs/sngan_cnn.py': (
        128 * 8192 + 8192 + 2 * 8192 + sum(16 * i * o + o + 2 * o for i, o in
                                           ((512, 256), (256, 128), (128, 64)))
        + 9 * 64 * 3 + 3,
        sum(k * k * i * o + o for k, i, o in ((3, 3, 64), (4, 64, 64), (3, 64, 128),
                                              (4, 128, 128), (3, 128, 256), (4, 256, 256),
                                              (3, 256, 512))) + 8192 + 1),
}


def _count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))


def _variables(config):
  generator, discriminator = models.build_models(config)
  z = jnp.zeros((2, config.model.latent_dim))
  images = jnp.zeros((2, 32, 32, 3))
  g_vars = jax.eval_shape(lambda: generator.init(jax.random.key(0), z, None, train=False))
  d_vars = jax.eval_shape(lambda: discriminator.init(jax.random.key(1), images, None,
                                                     train=False))
  return g_vars, d_vars


@pytest.mark.parametrize('spec', sorted(REFERENCE_COUNTS))
def test_parameter_counts_match_the_references(spec):
  g_vars, d_vars = _variables(load_config(spec))
  assert (_count(g_vars['params']), _count(d_vars['params'])) == REFERENCE_COUNTS[spec]
  # Every D layer is spectrally normalised: one power-iteration vector per kernel.
  kernels = [p for p in jax.tree_util.tree_leaves_with_path(d_vars['params'])
             if 'kernel' in jax.tree_util.keystr(p[0])]
  vectors = [p for p in jax.tree_util.tree_leaves_with_path(d_vars['spectral_norm'])
             if jax.tree_util.keystr(p[0]).endswith("/u']")]
  assert len(vectors) == len(kernels) > 0
  # In their own collection: BatchNorm's statistics hold none of them.
  assert not any(jax.tree_util.keystr(p).endswith(("/u']", "/sigma']"))
                 for p, _ in jax.tree_util.tree_leaves_with_path(
                     (g_vars.get('batch_stats', {}), d_vars.get('batch_stats', {}))))


def test_summary_counts_each_spectrally_normalised_layer_once():
  config = load_config('configs/sngan_resnet.py')
  g_layers, d_layers = summary.network_layers(config)
  assert sum(layer.trainable for layer in g_layers) == REFERENCE_COUNTS['configs/sngan_resnet.py'][0]
  assert sum(layer.trainable for layer in d_layers) == REFERENCE_COUNTS['configs/sngan_resnet.py'][1]
  assert len({layer.name for layer in d_layers}) == len(d_layers)


def _small(spec):
  """The config with narrow networks: the same code paths, seconds on a CPU."""
  config = load_config(spec)
  block = config.model[config.model.name]
  if config.model.name == 'resnet':
    block.G.channels, block.D.channels = 16, 16
  else:
    block.G.base_channels, block.G.channels = 32, (16, 16, 8)
    block.D.channels, block.D.top_channels = (8, 8, 16), 16
  return config


@pytest.mark.parametrize('spec', ['configs/sngan_resnet.py', 'configs/sngan_cnn.py'])
def test_contract_images_logits_and_live_gradients(spec):
  config = _small(spec)
  generator, discriminator = models.build_models(config)
  z = jax.random.normal(jax.random.key(0), (4, config.model.latent_dim))
  g_vars = generator.init(jax.random.key(1), z, None, train=False)
  images = generator.apply(g_vars, z, None, train=False)
  assert images.shape == (4, 32, 32, 3) and float(jnp.abs(images).max()) <= 1
  d_vars = discriminator.init(jax.random.key(2), images, None, train=False)
  logits = discriminator.apply(d_vars, images, None, train=False)
  assert logits.shape == (4,) and logits.dtype == jnp.float32
  np.testing.assert_array_equal(
      discriminator.apply(d_vars, images, jnp.arange(4), train=False), logits)

  def loss(g_params, d_params):
    fake, _ = generator.apply({**g_vars, 'params': g_params}, z, None, train=True,
                              mutable=list(models.STATE_COLLECTIONS))
    out, _ = discriminator.apply({**d_vars, 'params': d_params}, fake, None, train=True,
                                 mutable=list(models.STATE_COLLECTIONS))
    return out.mean()

  g_grads, d_grads = jax.grad(loss, argnums=(0, 1))(g_vars['params'], d_vars['params'])
  for path, grad in jax.tree_util.tree_leaves_with_path((g_grads, d_grads)):
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0, jax.tree_util.keystr(path)


def test_resnet_blocks_follow_the_reference_layout():
  g_vars, d_vars = _variables(load_config('configs/sngan_resnet.py'))
  g, d = g_vars['params'], d_vars['params']
  assert [k for k in g if k.startswith('GBlock')] == ['GBlock_0', 'GBlock_1', 'GBlock_2']
  assert g['GBlock_0']['Shortcut']['kernel'].shape == (1, 1, 256, 256)
  # Learnable shortcuts where a D block downsamples or changes width; identity otherwise.
  assert [('Shortcut' in d[f'DBlock_{i}']) for i in range(4)] == [True, True, False, False]
  assert 'bias' not in d['Dense_0'] and d['Dense_0']['kernel'].shape == (128, 1)


@pytest.mark.parametrize('spec', ['configs/sngan_resnet.py:smoke', 'configs/sngan_cnn.py:smoke',
                                  'configs/wgan_gp.py:smoke', 'configs/recap.py:all,smoke'])
def test_new_config_smoke_runs_resume_exactly(spec, tiny_cifar_dir, tmp_path):
  config = _small(spec) if 'sngan' in spec else load_config(spec)
  config.data.dir = str(tiny_cifar_dir)
  config.log.progress_bar = False
  if config.train.n_dis > 1:  # Two steps an epoch from the tiny folder's 120 images.
    config.train.g_batch_size = config.train.g_batch_size // 2
    config.train.batch_size = 8
  config.data.num_examples = 2 * config.train.n_dis * config.train.batch_size
  config.train.num_epochs = 2
  straight = loop.train_and_evaluate(config, tmp_path / 'straight')
  loop.train_and_evaluate(config, tmp_path / 'resumed', stop_at_step=1)
  resumed = loop.train_and_evaluate(config, tmp_path / 'resumed')
  assert int(resumed.step) == int(straight.step) == 4
  leaves = lambda state: jax.tree_util.tree_leaves(jax.device_get(state))
  chex.assert_trees_all_equal(leaves(straight), leaves(resumed))
  records = [json.loads(line) for line in
             (tmp_path / 'resumed' / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [1, 2, 3, 4]
  assert records[-1]['d_steps'] == 4 * config.train.n_dis


def test_variants_compose_with_smoke_and_unknown_ones_fail():
  config = load_config('configs/recap.py:all,smoke')
  assert config.train.batch_size == 16  # smoke
  assert config.loss.name == 'hinge' and config.model.dcgan.D.spectral_norm
  assert config.model.dcgan.D.batch_norm == (False, False)
  assert config.augment.policy == 'color,translation,cutout'
  assert config.train.g_ema_half_life_kimg == 10
  assert load_config('configs/recap.py:ema').loss.name == 'non_saturating'
  assert load_config('configs/sngan_resnet.py:diffaug').augment.policy
  with pytest.raises(ValueError, match="Unknown config variant 'shiny'.*'diffaug'"):
    load_config('configs/sngan_cnn.py:shiny')


def test_time_budget_stops_with_a_checkpoint_and_counts_over_resumes(smoke_config, tmp_path):
  smoke_config.train.num_epochs = 1000
  smoke_config.train.time_budget_minutes = 0.1  # 6 s.
  state = loop.train_and_evaluate(smoke_config, tmp_path)
  step = int(state.step)
  assert 0 < step < 6000
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  times = [r['time_s'] for r in records]
  assert times == sorted(times) and 6 <= times[-1] < 60
  assert (tmp_path / 'samples' / f'step_{step:08d}.png').is_file()
  # Rerun: the budget is spent, so nothing more is trained.
  again = loop.train_and_evaluate(smoke_config, tmp_path)
  assert int(again.step) == step
  # A larger budget continues the clock from the logged time, not from zero.
  smoke_config.train.time_budget_minutes = times[-1] / 60 + 0.02
  more = loop.train_and_evaluate(smoke_config, tmp_path)
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert int(more.step) > step and records[-1]['time_s'] > times[-1]
  assert [r['step'] for r in records] == list(range(1, int(more.step) + 1))


def test_cpu_time_budget_counts_the_process_cpu_seconds_over_resumes(smoke_config, tmp_path):
  """train.time_budget_clock='cpu': the budget is spent in the process' CPU seconds
  (`cpu_s`), logged beside the wall clock and continued over a resume like it."""
  smoke_config.train.num_epochs = 1000
  smoke_config.train.time_budget_minutes = 0.1
  smoke_config.train.time_budget_clock = 'cpu'
  state = loop.train_and_evaluate(smoke_config, tmp_path)
  read = lambda: [json.loads(line) for line in
                  (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  records = read()
  cpu = [r['cpu_s'] for r in records]
  assert cpu == sorted(cpu) and 6 <= cpu[-1] < 60
  # A CPU second is never more than a wall second per thread the process runs.
  assert all(r['cpu_s'] <= r['time_s'] * (os.cpu_count() or 1) + 1 for r in records)
  smoke_config.train.time_budget_minutes = cpu[-1] / 60 + 0.02
  more = loop.train_and_evaluate(smoke_config, tmp_path)
  records = read()
  # The clock went on from the log (a restarted one would fall back below cpu[-1]).
  resumed = [r['cpu_s'] for r in records]
  assert int(more.step) > int(state.step) and resumed == sorted(resumed)
  assert cpu[-1] + 1.2 <= resumed[-1] < cpu[-1] + 30


def test_fid_command_line_runs_as_a_module():
  """`python -m gan.metrics.fid` imports its own module twice (the package, then
  __main__); the metric must register once."""
  result = subprocess.run([sys.executable, '-m', 'gan.metrics.fid', '--help'],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert 'FID and KID between two image sets' in result.stdout


@pytest.mark.parametrize('spec, field, value, message', [
    ('configs/sngan_cnn.py', 'strided_conv_impl', 'fft', "strided_conv_impl='fft' is unknown"),
    ('configs/sngan_cnn.py', 'bn_epsilon', 0.0, 'bn_epsilon=0.0 must be > 0'),
    ('configs/sngan_resnet.py', 'bn_momentum', 1.0, 'bn_momentum=1.0 must be in'),
])
def test_bad_family_settings_are_named(spec, field, value, message):
  config = load_config(spec)
  config.model[config.model.name][field] = value
  assert any(message in problem for problem in models.problems(config))
