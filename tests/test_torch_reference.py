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


def test_per_network_times_the_torch_networks(capsys):
  load_benchmark('per_network').main(['--framework', 'torch', '--config',
                                      'configs/recap.py:smoke', '--batch_size', '4',
                                      '--repeats', '1'])
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
