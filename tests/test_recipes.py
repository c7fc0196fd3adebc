"""Each config is its reference's recipe: the settings that define it, pinned against the
reference its docstring cites (a wrong setting fails here, not in a week-long run)."""

import importlib

import jax
import pytest

from configs import baseline, biggan_cifar, recap, sngan_cnn, sngan_projection, sngan_resnet
from configs import wgan_gp
from gan import models, schedule, state
from gan.networks import Networks

CONFIGS = ('baseline', 'recap', 'sngan_cnn', 'sngan_resnet', 'sngan_projection',
           'biggan_cifar', 'wgan_gp')


def _count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))


def _param_counts(config) -> tuple[int, int]:
  g, d = Networks(config).init(jax.random.PRNGKey(0))
  return _count(g['params']), _count(d['params'])


def _adam(config, lr, b1, b2, eps, schedule_name='constant'):
  for net in ('G', 'D'):
    assert dict(config.optim[net]) == dict(name='adam', learning_rate=lr, b1=b1, b2=b2,
                                           eps=eps, schedule=schedule_name), net


def _g_updates(config) -> int:
  return schedule.total_steps(config, 50_000)


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_cites_its_reference(name):
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert 'Reference:' in doc


def test_the_course_designs_are_the_notebooks():
  """CAVASOL/aiffel_quest xp4_project.ipynb: Keras DCGANs, simultaneous updates, batch 256,
  Adam(1e-4) for 200 epochs, then recap's Adam(2e-4, 0.5) for 100; no EMA, no
  augmentation, non-saturating BCE."""
  initial, improved = baseline.get_config(), recap.get_config()
  for config in (initial, improved):
    assert config.model.name == 'dcgan' and config.model.latent_dim == 100
    assert config.loss.name == 'non_saturating' and config.train.update_rule == 'simultaneous'
    assert config.train.batch_size == 256 and config.train.n_dis == 1
    assert not state.keeps_g_ema(config) and config.augment.policy == ''
    assert not config.data.random_flip
    assert (config.model.dcgan.bn_momentum, config.model.dcgan.bn_epsilon) == (0.99, 1e-3)
    assert config.model.dcgan.G.kernel_size == config.model.dcgan.D.kernel_size == 5
  _adam(initial, 1e-4, 0.9, 0.999, 1e-7)
  _adam(improved, 2e-4, 0.5, 0.999, 1e-7)
  assert (initial.train.num_epochs, improved.train.num_epochs) == (200, 100)
  assert initial.model.dcgan.D.dropout == 0.3 and improved.model.dcgan.D.dropout == 0.0
  assert improved.model.dcgan.D.batch_norm == (False, True)
  # Keras' model.summary() totals: trainable parameters.
  assert _param_counts(initial) == (1_446_976, 217_985)
  assert _param_counts(improved) == (2_885_760, 218_241)


def test_recap_variants_add_one_improvement_each_and_sn_hinge_alternates():
  base = recap.get_config()
  ema = recap.get_config('ema')
  assert ema.train.g_ema_half_life_kimg == 10.0
  sn = recap.get_config('sn_hinge')
  assert sn.loss.name == 'hinge' and sn.train.update_rule == 'alternating'
  assert sn.model.dcgan.D.spectral_norm and sn.model.dcgan.D.batch_norm == (False, False)
  assert recap.get_config('diffaug').augment.policy == 'color,translation,cutout'
  every = recap.get_config('all')
  assert every.train.update_rule == 'alternating' and every.augment.policy
  assert state.keeps_g_ema(every) and every.model.dcgan.D.spectral_norm
  for variant in (ema, sn, every):
    assert variant.optim.to_dict() == base.optim.to_dict()  # Only the named part changes.


def test_sngan_standard_cnn_is_table_3_with_setting_c_and_the_hinge_loss():
  config = sngan_cnn.get_config()
  block = config.model.sngan_cnn
  assert block.G.base_channels == 512 and tuple(block.G.channels) == (256, 128, 64)
  assert tuple(block.D.channels) == (64, 128, 256) and block.D.top_channels == 512
  assert block.D.leaky_slope == 0.1 and block.D.spectral_norm and not block.G.spectral_norm
  assert (block.bn_momentum, block.bn_epsilon) == (0.9, 2e-5)
  assert block.weight_init == 'normal02'
  assert config.loss.name == 'hinge' and config.train.update_rule == 'alternating'
  assert config.train.n_dis == 1 and config.train.batch_size == 64
  assert config.model.latent_dim == 128
  _adam(config, 2e-4, 0.5, 0.999, 1e-8)
  assert not state.keeps_g_ema(config) and config.augment.policy == ''
  assert abs(_g_updates(config) - 100_000) < 100
  assert state.keeps_g_ema(sngan_cnn.get_config('ema'))


@pytest.mark.parametrize('get_config,conditional', [(sngan_resnet.get_config, False),
                                                    (sngan_projection.get_config, True)])
def test_sngan_resnets_are_the_authors_cifar10_configs(get_config, conditional):
  """pfnet-research/sngan_projection sn_cifar10_(un)conditional.yml and updater.py."""
  config = get_config()
  block = config.model.resnet
  assert config.model.conditional == conditional and config.model.class_head == 'projection'
  assert block.G.channels == 256 and block.G.num_blocks == 3 and block.D.channels == 128
  assert tuple(block.D.downsample) == (True, True, False, False)
  assert block.D.spectral_norm and not block.G.spectral_norm and block.G.shared_dim == 0
  assert block.weight_init == 'xavier' and (block.bn_momentum, block.bn_epsilon) == (0.9, 2e-5)
  assert config.loss.name == 'hinge' and config.train.update_rule == 'alternating'
  assert (config.train.batch_size, config.train.g_batch_size, config.train.n_dis) == (64, 128, 5)
  assert config.model.latent_dim == 128
  _adam(config, 2e-4, 0.0, 0.9, 1e-8, 'linear')
  assert abs(_g_updates(config) - 50_000) < 100
  assert not state.keeps_g_ema(config) and config.augment.policy == ''
  assert state.keeps_g_ema(get_config('ema'))


def test_biggan_is_biggan_pytorchs_cifar_script():
  """launch_cifar_ema.sh: batch 50, 4 D steps, Adam(2e-4, 0, 0.999), N02 init, no shared
  embedding or hierarchical z, SN in both, EMA 0.9999 from step 1000, 500 epochs."""
  config = biggan_cifar.get_config()
  block = config.model.resnet
  assert config.model.conditional and config.model.class_head == 'projection'
  assert block.weight_init == 'normal02' and block.G.shared_dim == 0
  assert block.G.spectral_norm and block.D.spectral_norm
  assert block.G.channels == 256 and block.D.channels == 256 and block.G.num_blocks == 3
  assert (block.bn_momentum, block.bn_epsilon) == (0.9, 1e-5)
  assert config.model.latent_dim == 128 and config.loss.name == 'hinge'
  assert (config.train.batch_size, config.train.g_batch_size, config.train.n_dis) == (50, 0, 4)
  _adam(config, 2e-4, 0.0, 0.999, 1e-8)
  assert config.train.g_ema_decay == 0.9999 and config.train.g_ema_start_step == 1000
  assert config.augment.policy == '' and not config.data.random_flip
  assert abs(_g_updates(config) - 125_000) < 100
  # DiffAugment-biggan-cifar10.sh: translation,cutout, mirrored reals, 250k G updates.
  diffaug = biggan_cifar.get_config('diffaug')
  assert diffaug.augment.policy == 'translation,cutout' and diffaug.data.random_flip
  assert abs(_g_updates(diffaug) - 250_000) < 100
  hier = biggan_cifar.get_config('hier')
  assert hier.model.resnet.G.shared_dim == 128 and hier.model.resnet.weight_init == 'orthogonal'


def test_biggans_class_tables_start_at_one_and_zero_plus_n02_noise():
  config = biggan_cifar.get_config('smoke')
  g, d = Networks(config).init(jax.random.PRNGKey(0))
  norm = g['params']['GBlock_0']['BatchNorm_0']
  gain, bias = norm['gain']['embedding'], norm['bias']['embedding']
  assert abs(float(gain.mean()) - 1) < 0.005 and abs(float(gain.std()) - 0.02) < 0.003
  assert abs(float(bias.mean())) < 0.005 and abs(float(bias.std()) - 0.02) < 0.003
  # A wide kernel (flax's SpectralNorm stores its initial value over the first estimate of
  # its largest singular value, about 1 for these shapes).
  kernel = d['params']['DBlock_1']['Conv_1']['kernel']
  assert abs(float(kernel.std()) - 0.02) < 0.002
  # SN-GAN's tables start at exactly 1 and 0.
  g, _ = Networks(sngan_projection.get_config('smoke')).init(jax.random.PRNGKey(0))
  norm = g['params']['GBlock_0']['BatchNorm_0']
  assert float(norm['gain']['embedding'].min()) == float(norm['gain']['embedding'].max()) == 1.0
  assert not float(abs(norm['bias']['embedding']).max())


def test_wgan_gp_is_the_authors_gan_cifar_script():
  """igul222/improved_wgan_training gan_cifar.py: DIM 128, lambda 10, 5 critic updates,
  batch 64, Adam(1e-4, 0.5, 0.9), 200k G updates, no normalisation in the critic."""
  config = wgan_gp.get_config()
  dcgan = config.model.dcgan
  assert config.model.latent_dim == 128
  assert dcgan.G.base_channels == 512 and tuple(dcgan.G.channels) == (256, 128)
  assert tuple(dcgan.D.channels) == (128, 256, 512) and not any(dcgan.D.batch_norm)
  assert dcgan.D.leaky_slope == 0.2 and dcgan.D.dropout == 0 and not dcgan.D.spectral_norm
  assert config.loss.name == 'wasserstein' and config.loss.gradient_penalty == 10.0
  assert (config.train.batch_size, config.train.n_dis) == (64, 5)
  assert config.train.update_rule == 'alternating'
  _adam(config, 1e-4, 0.5, 0.9, 1e-8)
  assert abs(_g_updates(config) - 200_000) < 200
  assert not state.keeps_g_ema(config) and config.augment.policy == ''


def test_the_standard_cnns_kernels_start_at_n02():
  g, d = Networks(sngan_cnn.get_config('smoke')).init(jax.random.PRNGKey(0))
  assert abs(float(g['params']['ConvTranspose_1']['kernel'].std()) - 0.02) < 0.001
  assert abs(float(g['params']['Dense_0']['kernel'].std()) - 0.02) < 0.001
  # (D's kernels are stored divided by flax's first estimate of their largest singular
  # value, so their spread is not the initialiser's.)


@pytest.mark.parametrize('name', CONFIGS)
def test_every_design_is_sampled_by_one_protocol(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  assert config.eval.g_statistics == 'standing' and config.eval.standing_batches == 16
  assert models.STATE_COLLECTIONS  # Sampling replaces only BatchNorm's statistics.
