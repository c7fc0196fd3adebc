"""gan.pretrained: a run's G shipped as sampled (float16), and `gan.sample --pretrained`
drawing from it with no data and no run folder."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from gan import data, loop, pretrained, sample


@pytest.fixture(scope='module')
def conditional_run(tmp_path_factory, tiny_cifar_dir):
  """A finished conditional cpu_dcgan smoke run (EMA, standing statistics)."""
  from configs import cpu_dcgan
  config = cpu_dcgan.get_config('conditional,smoke')
  config.data.dir = str(tiny_cifar_dir)
  config.log.progress_bar = False
  config.log.tensorboard = False
  workdir = tmp_path_factory.mktemp('run')
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_an_exported_g_samples_what_its_run_samples_without_data(conditional_run, tmp_path,
                                                                 monkeypatch):
  path = pretrained.export(conditional_run, 'tiny', into=tmp_path / 'shipped')
  record = json.loads(path.with_suffix('.json').read_text())
  assert record['ema'] and record['g_statistics'] == 'standing' and record['dtype'] == 'float16'
  assert record['step'] == 12 and record['config']['model']['conditional']
  with np.load(path) as arrays:
    assert {arrays[k].dtype for k in arrays.files} == {np.dtype(np.float16)}
    assert any(k.startswith('batch_stats/') for k in arrays.files)

  from_run = sample.Sampler.of_run(conditional_run, seed=3).grid(4)
  # No data anywhere: the shipped G needs none.
  monkeypatch.delenv(data.ENV_DIR, raising=False)
  from_file = sample.Sampler.of_pretrained(str(path), seed=3).grid(4)
  difference = np.abs(from_run.astype(int) - from_file.astype(int))
  assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 4  # float16 rounding.

  out = tmp_path / 'out'
  sample.main(['--pretrained', str(path), '--out', str(out), '--num', '20',
               '--interpolate', '2', '--grid_size', '4', '--seed', '3'])
  np.testing.assert_array_equal(iio.imread(out / 'grid.png'), from_file)
  with np.load(out / 'samples.npz') as archive:
    assert archive['images'].shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(archive['labels'], np.arange(20) % 10)  # Class-balanced.
  assert iio.imread(out / 'interpolation.gif').shape[0] == 2 * sample.FRAMES_PER_SEGMENT
  with pytest.raises(SystemExit):
    sample.main(['--pretrained', str(path), '--step', '3'])
  with pytest.raises(SystemExit):
    sample.main(['--pretrained', 'no_such_model'])


@pytest.mark.parametrize('name', pretrained.available())
def test_each_shipped_g_draws_varied_images(name, tmp_path):
  """The generators in gan/pretrained/ load and draw distinct pictures (a collapsed or
  broken G would draw copies)."""
  sampler = sample.Sampler.of_pretrained(name, seed=0)
  images, _ = sampler.image_set(16)
  flat = images.reshape(16, -1).astype(float)
  assert flat.std() > 20  # Not a flat colour.
  distances = np.abs(flat[:, None] - flat[None]).mean(-1)
  assert distances[~np.eye(16, dtype=bool)].min() > 3  # No two the same.
  record = json.loads(pretrained.path_of(name).with_suffix('.json').read_text())
  assert record['evaluations'], 'a shipped G says how good it is'
