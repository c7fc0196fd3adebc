"""The PyTorch yardstick of gan.bench is the same network: same parameter counts."""

import json

import numpy as np
import pytest

from configs import baseline, recap
from tests.conftest import load_benchmark
from tests.test_models import SEED_COUNTS

torch = pytest.importorskip('torch')


@pytest.mark.parametrize('name,get_config', [('baseline', baseline.get_config),
                                             ('recap', recap.get_config)])
def test_torch_reference_matches_the_seed_counts_and_trains(name, get_config):
  reference = load_benchmark('torch_dcgan')
  config = get_config()
  generator, discriminator = reference.build(config)
  assert reference.count_parameters(generator) == SEED_COUNTS[name]['G']
  assert reference.count_parameters(discriminator) == SEED_COUNTS[name]['D']
  assert generator(torch.zeros(4, 100)).shape == (4, 3, 32, 32)
  before = [p.detach().clone() for p in generator.parameters()]
  g_loss, d_loss = reference.make_step(config, generator, discriminator)(torch.rand(4, 3, 32, 32) * 2 - 1)
  assert np.isfinite(float(g_loss)) and np.isfinite(float(d_loss))
  assert all(not torch.equal(a, b) for a, b in zip(before, generator.parameters()))


def test_torch_reference_times_in_a_process_of_its_own():
  """gan.bench --torch runs the reference as a program: it prints one rate per window."""
  from gan import bench
  env = {}
  rates = bench.torch_reference_rates('configs/recap.py:smoke', ['model.dcgan.G.channels=(16,8)'],
                                      batch_size=4, num_steps=1, num_windows=2, warmup=0,
                                      env=env)
  assert len(rates) == 2 and all(r > 0 for r in rates)
  assert env['torch'] == torch.__version__ and env['torch_device'] == 'cpu'


@pytest.mark.parametrize('config', ['configs/recap.py:smoke', 'configs/sngan_resnet.py:smoke'])
def test_per_network_times_the_torch_networks(capsys, config):
  """Each family's own PyTorch networks."""
  load_benchmark('per_network').main(['--framework', 'torch', '--config', config,
                                      '--batch_size', '2', '--repeats', '1'])
  report = json.loads(capsys.readouterr().out)
  assert report['framework'] == 'torch'
  assert set(report['median_ms']) == {'G', 'D fake (params and input)', 'D real (params)'}
  assert all(ms > 0 for ms in report['median_ms'].values())


def test_per_layer_runs_both_frameworks_side_by_side(capsys):
  """Each framework in a process of its own; the table weights CPU times per step."""
  per_layer = load_benchmark('per_layer')
  per_layer.main(['--framework', 'both', '--config', 'configs/recap.py:smoke',
                  '--batch_size', '2', '--repeats', '1'])
  out = capsys.readouterr().out
  report = json.loads(out.strip().splitlines()[-1])
  assert set(report['results']) == {'jax', 'torch'}
  assert list(report['results']['torch']) == list(report['results']['jax'])
  table = out.split('\n{')[0]
  for name in report['results']['jax']:
    assert sum(line.startswith(name + ' ') for line in table.splitlines()) == len(per_layer.OPS)
  assert 'all convolutions: jax' in table


def test_torch_reference_program_reports_rates_and_cpu_time(capsys):
  load_benchmark('torch_dcgan').main(['--config', 'configs/recap.py:smoke', '--batch_size', '4',
                                      '--steps', '1', '--windows', '2', '--warmup', '0'])
  report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert len(report['img_per_sec']) == len(report['cpu_ms_per_step']) == 2
  assert all(ms > 0 for ms in report['cpu_ms_per_step'])


def test_the_reference_refuses_a_step_it_does_not_compute():
  config = recap.get_config('smoke')
  config.loss.name = 'hinge'
  config.train.update_rule, config.train.n_dis = 'alternating', 2
  with pytest.raises(ValueError, match="seed's DCGAN step only.*train.update_rule='alternating'"):
    load_benchmark('torch_dcgan').build(config)


def _small_resnet_config():
  from configs import sngan_resnet
  config = sngan_resnet.get_config('smoke')
  config.model.resnet.G.channels, config.model.resnet.D.channels = 32, 16
  config.train.batch_size, config.train.g_batch_size, config.train.n_dis = 4, 8, 2
  return config


def test_torch_resnet_reference_is_the_family_and_runs_its_alternating_step():
  from configs import sngan_resnet
  from tests.test_families import REFERENCE_COUNTS
  reference = load_benchmark('torch_resnet')
  generator, discriminator = reference.build(sngan_resnet.get_config())
  # The JAX family's counts, themselves pinned against the SN-GAN authors' code.
  assert (reference.count_parameters(generator)[0],
          reference.count_parameters(discriminator)[0]) == REFERENCE_COUNTS[
              'configs/sngan_resnet.py']
  assert generator(torch.zeros(2, 128)).shape == (2, 3, 32, 32)
  assert discriminator(torch.zeros(2, 3, 32, 32)).shape == (2,)

  config = _small_resnet_config()
  generator, discriminator = reference.build(config)
  g_before = [p.detach().clone() for p in generator.parameters()]
  d_before = [p.detach().clone() for p in discriminator.parameters()]
  step = reference.make_step(config, generator, discriminator)
  g_loss, d_loss = step(torch.rand(8, 3, 32, 32) * 2 - 1)  # n_dis 2 batches of 4.
  assert np.isfinite(float(g_loss)) and 0 <= float(d_loss)  # Hinge: D's loss >= 0.
  assert all(not torch.equal(a, b) for a, b in zip(g_before, generator.parameters()))
  assert all(not torch.equal(a, b) for a, b in zip(d_before, discriminator.parameters()))
  assert all(p.requires_grad for p in discriminator.parameters())  # Released after G's update.
  # Spectral norm: the largest singular value of D's normalised kernels is near 1.
  weight = discriminator.head.weight.detach()
  assert abs(float(torch.linalg.matrix_norm(weight, 2)) - 1) < 0.05


def test_gan_bench_times_each_family_with_its_own_reference(tmp_path):
  from gan import bench
  rates = bench.torch_reference_rates(
      'configs/sngan_resnet.py:smoke',
      ['model.resnet.G.channels=32', 'model.resnet.D.channels=16', 'train.n_dis=2'],
      batch_size=2, num_steps=1, num_windows=2, warmup=0)
  assert len(rates) == 2 and all(r > 0 for r in rates)
  with pytest.raises(ValueError, match="No PyTorch reference for model.name='sngan_cnn'"):
    bench.torch_reference_script('sngan_cnn')
  config = _small_resnet_config()
  config.loss.name = 'non_saturating'
  with pytest.raises(ValueError, match="ResNet's hinge step only.*loss.name='non_saturating'"):
    load_benchmark('torch_resnet').build(config)
