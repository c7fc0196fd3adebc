"""gan.sample: pictures and image sets from a trained run, reproducible from a seed."""

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from gan import loop, sample, visualize
from gan.sampling import Sampling
from gan.metrics import fid


def _trained(tmp_path_factory, tiny_cifar_dir, variant: str):
  """The folder of a finished recap smoke run of `variant`, on the tiny data."""
  from configs import recap
  config = recap.get_config(variant)
  config.data.dir = str(tiny_cifar_dir)
  config.log.progress_bar = False
  config.log.tensorboard = False
  workdir = tmp_path_factory.mktemp('run')
  loop.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def run(tmp_path_factory, tiny_cifar_dir):
  return _trained(tmp_path_factory, tiny_cifar_dir, 'ema,smoke')  # The samples are the EMA's.


def test_grid_npz_pngs_and_gif_are_written_and_reproduce(run, tmp_path, capsys):
  first, again, other = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
  sample.main(['--workdir', str(run), '--out', str(first), '--num', '5', '--png',
               '--interpolate', '2', '--grid_size', '3', '--seed', '4'])
  assert 'grid.png' in capsys.readouterr().out
  grid = iio.imread(first / 'grid.png')
  assert grid.shape == (3 * 34 + 2, 3 * 34 + 2, 3)  # 32-pixel images, 2-pixel gaps.
  images, _ = fid.load_images(str(first / 'samples.npz'))  # What gan.metrics.fid reads.
  with np.load(first / 'samples.npz') as archive:
    assert archive.files == ['images']  # Unconditional: no labels.
  assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
  pngs = sorted((first / 'png').iterdir())
  assert [p.name for p in pngs] == [f'{i:06d}.png' for i in range(5)]
  np.testing.assert_array_equal(np.stack([iio.imread(p) for p in pngs]), images)
  gif = iio.imread(first / 'interpolation.gif', index=None)
  assert gif.shape[0] == 2 * sample.FRAMES_PER_SEGMENT and gif.shape[1:3] == grid.shape[:2]

  # The same seed and checkpoint: the same pictures bit for bit; another seed: others.
  sample.main(['--workdir', str(run), '--out', str(again), '--num', '5', '--grid_size', '3',
               '--seed', '4'])
  np.testing.assert_array_equal(iio.imread(again / 'grid.png'), grid)
  np.testing.assert_array_equal(np.load(again / 'samples.npz')['images'], images)
  sample.main(['--workdir', str(run), '--out', str(other), '--grid_size', '3', '--seed', '5'])
  assert not np.array_equal(iio.imread(other / 'grid.png'), grid)


@pytest.fixture(scope='module')
def conditional_run(tmp_path_factory, tiny_cifar_dir):
  return _trained(tmp_path_factory, tiny_cifar_dir, 'conditional,smoke')


def test_a_conditional_run_samples_per_class_and_one_class(conditional_run, tmp_path):
  rows, one = tmp_path / 'rows', tmp_path / 'horse'
  sample.main(['--workdir', str(conditional_run), '--out', str(rows), '--num', '20',
               '--grid_size', '3'])
  grid = iio.imread(rows / 'grid.png')
  assert grid.shape[0] == 3 * 34 + 2 and grid.shape[1] > 3 * 34 + 2  # Named rows.
  with np.load(rows / 'samples.npz') as archive:
    assert np.bincount(archive['labels'], minlength=10).tolist() == [2] * 10  # Balanced.
  sample.main(['--workdir', str(conditional_run), '--out', str(one), '--num', '20',
               '--grid_size', '3', '--class', 'horse'])
  assert iio.imread(one / 'grid.png').shape == (3 * 34 + 2, 3 * 34 + 2, 3)  # No names.
  balanced = np.load(rows / 'samples.npz')['images']
  with np.load(one / 'samples.npz') as archive:
    assert archive['labels'].tolist() == [7] * 20
    horses = archive['images']
  # The same latents: sample 7 was a horse in the balanced set too, the others were not.
  np.testing.assert_array_equal(horses[7], balanced[7])
  assert all(not np.array_equal(horses[i], balanced[i]) for i in range(20) if i % 10 != 7)


def test_an_unknown_class_of_a_conditional_run_fails(conditional_run, tmp_path, capsys):
  with pytest.raises(SystemExit):
    sample.main(['--workdir', str(conditional_run), '--out', str(tmp_path / 'x'),
                 '--class', 'unicorn'])
  assert "--class unicorn: not a class of this run; use one of ['airplane'" in capsys.readouterr().err
  assert not (tmp_path / 'x').exists()


def test_a_kept_checkpoint_and_the_ema_generator(run):
  from gan import checkpoint
  kept = checkpoint.Checkpointer(run / 'checkpoints', max_to_keep=2).all_steps()
  early, late = (sample.Sampler.of_run(run, step) for step in kept)
  assert (early.step, late.step) == tuple(kept)
  assert not np.array_equal(early.grid(2), late.grid(2))
  # The EMA parameters, not the last iterate's.
  state_params = evaluate_state(run).g.params
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree_util.tree_leaves(late.variables['params']),
      jax.tree_util.tree_leaves(state_params)))


def evaluate_state(run):
  from gan import evaluate
  return evaluate.load_run(run)[2]


def test_truncation_bounds_every_latent():
  z = sample.latents(jax.random.PRNGKey(0), 500, 16, truncation=0.5)
  assert np.abs(z).max() <= 0.5 and z.std() > 0.2
  full = sample.latents(jax.random.PRNGKey(0), 500, 16)
  assert np.abs(full).max() > 2


def test_slerp_keeps_its_endpoints_and_the_norm():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(4, 64)), rng.normal(size=(4, 64))
  b *= np.linalg.norm(a, axis=1, keepdims=True) / np.linalg.norm(b, axis=1, keepdims=True)
  np.testing.assert_allclose(sample.slerp(a, b, 0.0), a, atol=1e-12)
  np.testing.assert_allclose(sample.slerp(a, b, 1.0), b, atol=1e-12)
  middle = sample.slerp(a, b, 0.5)
  np.testing.assert_allclose(np.linalg.norm(middle, axis=1), np.linalg.norm(a, axis=1))
  assert np.linalg.norm((a + b) / 2, axis=1).mean() < np.linalg.norm(middle, axis=1).mean()
  np.testing.assert_allclose(sample.slerp(a, a, 0.3), a)  # Parallel: no division by 0.


def test_labels_of_a_conditional_grid():
  assert visualize.grid_labels(3, 2, 10, conditional=False) is None
  assert visualize.grid_labels(3, 2, 10, True).tolist() == [0, 0, 1, 1, 2, 2]
  assert visualize.grid_labels(12, 1, 10, True).tolist() == list(range(10)) + [0, 1]
  assert visualize.grid_labels(2, 2, 10, True, fixed_class=7).tolist() == [7] * 4
  names = ('airplane', 'cat')
  assert sample.class_index('cat', names, True) == 1 and sample.class_index('0', names, True) == 0
  with pytest.raises(sample.SampleError, match=r"not a class of this run; use one of \['airplane', 'cat'\]"):
    sample.class_index('horse', names, True)
  picture = visualize.name_rows(np.zeros((70, 70, 3), np.uint8), ['airplane', 'cat'], 32)
  assert picture.shape[0] == 70 and picture.shape[1] > 70
  assert (picture[:, :picture.shape[1] - 70] < 255).any()  # The names are drawn.


@pytest.mark.parametrize('args,message', [
    (['--class', 'cat'], 'this run is unconditional'),
    (['--num', '-1'], '--num=-1: give at least 0'),
    (['--truncation', '-1'], '--truncation=-1.0: give a positive threshold'),
    (['--interpolate', '1'], 'at least 2 keyframes'),
    (['--png'], '--png writes the --num images'),
    (['--step', '999'], 'No checkpoint of step 999'),
])
def test_bad_requests_fail_with_one_message(run, tmp_path, capsys, args, message):
  with pytest.raises(SystemExit) as exit_info:
    sample.main(['--workdir', str(run), '--out', str(tmp_path / 'x'), *args])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / 'x').exists()  # Nothing written.


def test_a_folder_without_a_run_fails_clearly(tmp_path, capsys):
  with pytest.raises(SystemExit):
    sample.main(['--workdir', str(tmp_path)])
  assert 'is ' + str(tmp_path) + ' a run folder' in capsys.readouterr().err


def test_the_ema_is_sampled_with_its_own_statistics_as_the_run_or_the_flag_says(run, tmp_path):
  """gan.sample's G is the EMA with standing statistics by default (the run's
  eval.g_statistics), with the EMA's averaged running statistics under --g_statistics
  running; the two grids differ."""
  from gan import evaluate
  _, _, state = evaluate.load_run(run)
  default = sample.Sampler.of_run(run)
  assert default.sampling.mode == 'standing'
  np.testing.assert_array_equal(default.variables['params']['Dense_0']['kernel'],
                                state.g_ema['Dense_0']['kernel'])
  running = sample.Sampler.of_run(run, g_statistics='running')
  for path, value in jax.tree_util.tree_leaves_with_path(running.variables['batch_stats']):
    expected = state.g_ema_collections['batch_stats']
    for key in path:
      expected = expected[key.key]
    np.testing.assert_array_equal(value, expected)
  sample.main(['--workdir', str(run), '--out', str(tmp_path / 's'), '--grid_size', '3'])
  sample.main(['--workdir', str(run), '--out', str(tmp_path / 'r'), '--grid_size', '3',
               '--g_statistics', 'running'])
  assert not np.array_equal(iio.imread(tmp_path / 's' / 'grid.png'),
                            iio.imread(tmp_path / 'r' / 'grid.png'))


def test_the_live_g_of_an_ema_run_is_scored_apart(run, conditional_run):
  """`gan.evaluate --live_g`: the same training's last iterate, recorded as such and kept
  out of the run's own row by gan.compare (its own row with live_g)."""
  from gan import compare, evaluate
  ema = evaluate.evaluate_run(run, 20, 'test', metric_names=['recognisability'])
  live = evaluate.evaluate_run(run, 20, 'test', metric_names=['recognisability'], live_g=True)
  assert 'eval/g_weights' not in ema and live['eval/g_weights'] == 'live'
  config, networks, state = evaluate.load_run(run)
  sampled = [Sampling(config, networks, ema=ema).variables(state)['params'] for ema in (1, 0)]
  assert jax.tree.leaves(sampled[0])[0].tolist() != jax.tree.leaves(sampled[1])[0].tolist()
  np.testing.assert_array_equal(jax.tree.leaves(sampled[1])[0],
                                jax.tree.leaves(state.g.params)[0])
  own, apart = compare.summarize_run(run), compare.summarize_run(run, live_g=True)
  assert own['class entropy'] == ema['eval/class_entropy']
  assert apart['class entropy'] == live['eval/class_entropy']
  assert apart['run'].endswith('(live G)') and 'EMA' not in apart['design']
  with pytest.raises(ValueError, match='keeps no EMA'):
    evaluate.evaluate_run(conditional_run, 20, 'test', metric_names=['recognisability'],
                          live_g=True)
