"""End-to-end runs of the smoke config: outputs, resume, failure modes."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import imageio.v3 as iio
import jax
import numpy as np
import pytest

from gan import checkpoint, loop

ROOT = Path(__file__).resolve().parents[1]


def _leaves(state):
  return jax.tree_util.tree_leaves(jax.device_get(state))


def test_smoke_run_writes_every_output(smoke_config, tmp_path):
  state = loop.train_and_evaluate(smoke_config, tmp_path)
  steps_per_epoch = smoke_config.data.num_examples // smoke_config.train.batch_size
  total = steps_per_epoch * smoke_config.train.num_epochs
  assert int(state.step) == total

  config = json.loads((tmp_path / 'config.json').read_text())
  assert config['model']['dcgan']['G']['channels'] == [256, 128]
  assert config['seed'] == smoke_config.seed

  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == list(range(1, total + 1))  # Every step logged.
  for key in ('epoch', 'kimg', 'G/loss', 'D/loss', 'D/acc_real', 'D/acc_fake', 'img_per_sec'):
    assert all(np.isfinite(r[key]) for r in records), key
  assert records[-1]['epoch'] == smoke_config.train.num_epochs
  assert records[-1]['kimg'] == total * smoke_config.train.batch_size / 1000
  assert (records[-1]['g_steps'], records[-1]['d_steps']) == (total, total)
  assert int(state.images_shown) == total * smoke_config.train.batch_size
  assert (int(state.g.step), int(state.d.step)) == (total, total)

  grids = sorted((tmp_path / 'samples').glob('*.png'))
  assert [p.name for p in grids] == [f'step_{e * steps_per_epoch:08d}.png'
                                     for e in range(smoke_config.train.num_epochs + 1)]
  grid = iio.imread(grids[-1])
  assert grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3)  # 4x4 samples of 32 px, 2 px gaps.
  assert not np.array_equal(iio.imread(grids[0]), grid)  # G changed between epochs.
  gif = iio.imread(tmp_path / 'progress.gif', index=None)
  assert gif.shape[0] == len(grids)
  assert iio.imread(tmp_path / 'curves.png').shape[-1] in (3, 4)
  assert list((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))
  assert checkpoint.Checkpointer(tmp_path / 'checkpoints', 2).latest_step() == total


@pytest.mark.parametrize('steps_per_call', [1, 4])
def test_interrupted_and_resumed_run_equals_uninterrupted(smoke_config, tmp_path, steps_per_call):
  """Also with 4 steps a call: 6 steps an epoch run as calls of 4 and 2."""
  smoke_config.train.g_ema_decay = 0.9  # The EMA of G is part of what must resume exactly,
  smoke_config.model.dcgan.D.spectral_norm = True  # and D's power-iteration vectors.
  smoke_config.train.steps_per_call = steps_per_call
  straight = loop.train_and_evaluate(smoke_config, tmp_path / 'straight')
  # Stop mid-epoch (6 steps an epoch), then rerun the same command twice.
  stopped = loop.train_and_evaluate(smoke_config, tmp_path / 'resumed', stop_at_step=4)
  assert int(stopped.step) == 4
  resumed = loop.train_and_evaluate(smoke_config, tmp_path / 'resumed')
  chex.assert_trees_all_equal(_leaves(straight), _leaves(resumed))
  # The metrics file of the resumed run tells the same story, step for step.
  lines = lambda d: [json.loads(l) for l in (tmp_path / d / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in lines('straight')] == list(range(1, int(straight.step) + 1))
  for a, b in zip(lines('straight'), lines('resumed'), strict=True):
    assert (a['step'], a['G/loss'], a['D/loss']) == (b['step'], b['G/loss'], b['D/loss'])
  # A finished run rerun does nothing more.
  again = loop.train_and_evaluate(smoke_config, tmp_path / 'resumed')
  chex.assert_trees_all_equal(_leaves(again), _leaves(resumed))


@pytest.mark.parametrize('steps_per_call', [1, 4])
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    smoke_config, tmp_path, capsys, steps_per_call):
  """With 4 steps a call the bad step is inside a call: still named, still never saved."""
  smoke_config.train.steps_per_call = steps_per_call
  smoke_config.train.num_epochs = 1
  good = loop.train_and_evaluate(smoke_config, tmp_path)
  smoke_config.train.num_epochs = 2
  for net in ('G', 'D'):
    smoke_config.optim[net].learning_rate = 1e38  # Parameters blow up after one update.
  with pytest.raises(loop.NonFiniteError, match=r'Non-finite .* at step (7|8)\b'):
    loop.train_and_evaluate(smoke_config, tmp_path)
  assert 'Changed: optim.D.learning_rate, optim.G.learning_rate' in capsys.readouterr().out
  checkpointer = checkpoint.Checkpointer(tmp_path / 'checkpoints', 2)
  assert checkpointer.latest_step() == 6
  restored = checkpointer.restore_latest(good)
  chex.assert_trees_all_equal(_leaves(restored), _leaves(good))


@pytest.mark.parametrize('field,value,message', [
    ('model.name', 'biggan', "model.name='biggan' is no known family"),
    ('model.dcgan.strided_conv_impl', 'winograd', "model.dcgan.strided_conv_impl='winograd' is "
     "unknown; use one of ['flax', 'space_to_depth', 'subpixel_grad']"),
    ('optim.G.learning_rate', -1e-4, 'optim.G.learning_rate=-0.0001 must be a positive number'),
    ('optim.D.name', 'lion', "optim.D.name='lion': use one of ['adam']"),
    ('train.batch_size', 15, 'must be divisible by the 2 devices'),
    ('train.update_rule', 'sometimes', "train.update_rule='sometimes'"),
    ('train.g_ema_decay', 1.0, 'train.g_ema_decay=1.0 must be in [0, 1)'),
    ('train.dropout_rng', 'mt19937', "train.dropout_rng='mt19937': use one of"),
    ('train.steps_per_call', 0, 'train.steps_per_call=0 must be a positive integer'),
    ('train.n_dis', 2, "train.n_dis=2: the 'simultaneous' rule makes one D update a step"),
    ('train.g_ema_half_life_kimg', -1.0, 'train.g_ema_half_life_kimg=-1.0 must be >= 0'),
    ('augment.policy', 'flip,jitter', "augment.policy names 'jitter', no known augmentation"),
    ('eval.metrics', ('fid', 'lpips'), "eval.metrics names ['lpips'], no known metric"),
    ('eval.every', 'weekly', "eval.every: 'weekly' is no period"),
    ('checkpoint.every', '0 epochs', "checkpoint.every: '0 epochs' is no period"),
    ('data.dataset', 'mnist', "data.dataset='mnist' is unknown; use one of ['cifar10']"),
    ('model.compute_dtype', 'bf16', "model.compute_dtype='bf16': use 'float32' or 'bfloat16'"),
    ('optim.G.schedule', 'cosine', "optim.G.schedule='cosine': use one of"),
])
def test_bad_config_fails_before_anything_runs(smoke_config, tmp_path, field, value, message):
  section, _, key = field.rpartition('.')
  target = smoke_config
  for part in section.split('.'):
    target = target[part]
  target[key] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    loop.train_and_evaluate(smoke_config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()  # Nothing loaded, compiled or written.


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_save_a_checkpoint(tiny_cifar_dir, tmp_path, signum):
  workdir = tmp_path / 'run'
  command = [sys.executable, str(ROOT / 'train.py'), '--config', str(ROOT / 'configs/recap.py:smoke'),
             '--config.train.num_epochs=1000', '--config.log.progress_bar=False',
             f'--workdir={workdir}']
  env = {**os.environ, 'GAN_CIFAR10_DIR': str(tiny_cifar_dir), 'PYTHONPATH': str(ROOT)}
  process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 240
  while time.time() < deadline and not (metrics.exists() and metrics.read_text().count('\n') >= 3):
    assert process.poll() is None, process.stdout.read()
    time.sleep(0.5)
  process.send_signal(signum)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0, output
  message = f'Stopped by {signal.Signals(signum).name} at step '
  assert message in output, output
  stopped_at = int(output.split(message)[1].split(';')[0])
  assert stopped_at >= 3
  assert checkpoint.Checkpointer(workdir / 'checkpoints', 2).latest_step() == stopped_at
  last_logged = json.loads(metrics.read_text().splitlines()[-1])['step']
  assert last_logged == stopped_at


def test_periodic_work_on_kimg_and_step_schedules(smoke_config, tmp_path):
  """Grids every 0.032 kimg (2 steps of 16 images), checkpoints every 3 steps, with 2
  steps a call: each falls due after the call that reaches its time, and at the end."""
  smoke_config.eval.samples_every = '0.032 kimg'
  smoke_config.checkpoint.every = '3 steps'
  smoke_config.checkpoint.max_to_keep = 10
  smoke_config.train.steps_per_call = 2
  loop.train_and_evaluate(smoke_config, tmp_path)  # 12 steps.
  grids = sorted(p.name for p in (tmp_path / 'samples').glob('*.png'))
  assert grids == [f'step_{s:08d}.png' for s in (0, 2, 4, 6, 8, 10, 12)]
  saved = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert saved == [4, 6, 10, 12]  # Calls end at even steps: after steps 3, 6, 9 and the end.
  frames = iio.imread(tmp_path / 'progress.gif', index=None)
  assert frames.shape[0] == len(grids)


def test_n_dis_run_counts_d_steps_and_images(smoke_config, tmp_path):
  """An alternating run with 2 D updates a step: each step takes two real batches."""
  smoke_config.train.update_rule = 'alternating'
  smoke_config.train.n_dis = 2
  state = loop.train_and_evaluate(smoke_config, tmp_path)
  steps_per_epoch = smoke_config.data.num_examples // (2 * smoke_config.train.batch_size)
  total = steps_per_epoch * smoke_config.train.num_epochs
  assert (int(state.step), int(state.g.step), int(state.d.step)) == (total, total, 2 * total)
  last = json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[-1])
  assert (last['g_steps'], last['d_steps'], last['epoch']) == (total, 2 * total, 2.0)
  assert last['kimg'] == 2 * total * smoke_config.train.batch_size / 1000


def test_inception_score_without_its_weights_fails_before_anything_runs(smoke_config, tmp_path,
                                                                        monkeypatch):
  monkeypatch.delenv('GAN_INCEPTION_LOGITS', raising=False)
  smoke_config.eval.metrics = ('fid', 'inception_score')
  with pytest.raises(ValueError, match="'inception_score', which needs the reference Inception"):
    loop.train_and_evaluate(smoke_config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_batches_gathered_by_the_host_train_the_same_run(smoke_config, tmp_path):
  """data.on_device=False: the host gathers each call's batches (images and labels) and
  copies them over; the run is the one the device-side gather makes."""
  smoke_config.train.num_epochs = 1
  on_device = loop.train_and_evaluate(smoke_config, tmp_path / 'device')
  smoke_config.data.on_device = False
  from_host = loop.train_and_evaluate(smoke_config, tmp_path / 'host')
  chex.assert_trees_all_close(_leaves(on_device), _leaves(from_host), rtol=1e-5, atol=1e-6)


@pytest.fixture
def make_read_only():
  """Makes a folder read-only even for root (a read-only bind mount over itself), undone
  after the test; skips where this machine does not allow mounts."""
  mounted = []

  def make(folder: Path) -> None:
    if subprocess.run(['mount', '--bind', str(folder), str(folder)],
                      capture_output=True).returncode != 0:
      pytest.skip('mounting needs privileges this machine does not give')
    mounted.append(folder)
    subprocess.run(['mount', '-o', 'remount,ro,bind', str(folder)], check=True)

  yield make
  for folder in mounted:
    subprocess.run(['umount', str(folder)], check=True)


def test_a_read_only_workdir_stops_before_any_work_with_its_files_kept(smoke_config, tmp_path,
                                                                       make_read_only):
  shelf = tmp_path / 'shelf'
  loop.train_and_evaluate(smoke_config, shelf / 'run', stop_at_step=6)
  make_read_only(shelf)
  files = lambda: {p: p.read_bytes() for p in shelf.rglob('*') if p.is_file()}
  before = files()
  for workdir in (shelf / 'run', shelf / 'fresh'):  # A run to resume, a new one.
    with pytest.raises(OSError, match=re.escape(f'The run folder {workdir} cannot be '
                                                f'written (Read-only file system')):
      loop.train_and_evaluate(smoke_config, workdir)
  assert files() == before
