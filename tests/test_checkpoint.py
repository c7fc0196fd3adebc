"""Checkpoints: an exact round trip of the whole GANState, and the keep policy."""

import json

import chex
import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from configs import recap
from gan import checkpoint, parallel, steps
from gan.networks import Networks
from gan.state import create_state


def test_round_trip_is_exact_and_latest_wins(tmp_path):
  config = recap.get_config('smoke')
  config.train.batch_size = 4
  mesh = Mesh(np.array(jax.devices()), ('data',))
  networks = Networks(config)
  state = jax.device_put(create_state(config, networks), parallel.replicated(mesh))
  train_step = steps.make_train_step(config, networks, mesh)
  batch = jax.device_put({'image': np.full((4, 32, 32, 3), 100, np.uint8),
                          'label': np.arange(4, dtype=np.int32)}, parallel.batch_sharding(mesh))

  checkpointer = checkpoint.Checkpointer(tmp_path, max_to_keep=2)
  assert checkpointer.restore_latest(state) is None  # An empty folder: start fresh.
  template = jax.device_get(state)
  saved = []
  for _ in range(3):
    state, _ = train_step(state, batch)
    checkpointer.save(state)
    saved.append(jax.device_get(state))
  assert checkpointer.latest_step() == 3
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ['2', '3']

  restored = checkpoint.Checkpointer(tmp_path, max_to_keep=2).restore_latest(state)
  chex.assert_trees_all_equal(jax.device_get(restored), saved[-1])  # G, D, both Adam states,
  assert int(restored.step) == 3 and int(restored.images_shown) == 12  # counters, key.
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(template)
  # The restored state trains on exactly like the original.
  chex.assert_trees_all_equal(jax.device_get(train_step(restored, batch)[1]),
                              jax.device_get(train_step(jax.device_put(saved[-1], parallel.replicated(mesh)), batch)[1]))


def test_checkpoint_from_before_g_ema_and_images_shown_restores_without_them(tmp_path):
  """Runs saved before GANState had `g_ema` and `images_shown` still resume and evaluate:
  no EMA, and the images shown counted from the step."""
  import orbax.checkpoint as ocp
  config = recap.get_config('smoke')
  networks = Networks(config)
  state = create_state(config, networks)
  old_layout = {'g': state.g, 'd': state.d, 'step': state.step.at[()].set(7), 'key': state.key}
  with ocp.CheckpointManager(tmp_path.absolute()) as manager:
    manager.save(7, args=ocp.args.StandardSave(old_layout))
  restored = checkpoint.Checkpointer(tmp_path, max_to_keep=2).restore_latest(
      state, images_per_step=16)
  assert restored.g_ema is None
  assert int(restored.step) == 7 and int(restored.images_shown) == 7 * 16
  chex.assert_trees_all_equal(jax.device_get(restored.g.params), jax.device_get(state.g.params))

  config.train.g_ema_decay = 0.99  # But a run that wants an EMA cannot invent one.
  with_ema = create_state(config, networks)
  with pytest.raises(ValueError, match='holds no EMA of G'):
    checkpoint.Checkpointer(tmp_path, max_to_keep=2).restore_latest(with_ema, 16)


def test_an_ema_saved_without_statistics_of_its_own_restores_with_the_live_gs(tmp_path, capsys):
  """An EMA saved before G's state collections were averaged with its parameters restores
  (to sample, evaluate, train on) with the live G's statistics it carries, said in a
  warning; the EMA's parameters are the saved ones."""
  import orbax.checkpoint as ocp
  config = recap.get_config('smoke')
  config.train.g_ema_decay = 0.99
  networks = Networks(config)
  state = create_state(config, networks)
  g = state.g.replace(batch_stats=jax.tree.map(lambda x: x + 3.0, state.g.batch_stats))
  ema = jax.tree.map(lambda x: x * 0.5, state.g_ema)
  old_layout = {'g': g, 'd': state.d, 'step': state.step.at[()].set(5), 'key': state.key,
                'images_shown': state.images_shown, 'g_ema': ema}
  with ocp.CheckpointManager(tmp_path.absolute()) as manager:
    manager.save(5, args=ocp.args.StandardSave(old_layout))
  restored = checkpoint.Checkpointer(tmp_path, max_to_keep=2).restore_latest(state)
  assert 'saved before the EMA of G kept BatchNorm statistics of its own' in capsys.readouterr().out
  chex.assert_trees_all_equal(jax.device_get(restored.g_ema), jax.device_get(ema))
  chex.assert_trees_all_equal(jax.device_get(restored.g_ema_collections),
                              jax.device_get(g.collections))
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)


def test_a_run_that_kept_an_ema_resumes_without_one(tmp_path):
  config = recap.get_config('smoke')
  config.train.g_ema_decay = 0.99
  networks = Networks(config)
  with_ema = create_state(config, networks)
  checkpoint.Checkpointer(tmp_path, max_to_keep=2).save(with_ema)
  config.train.g_ema_decay = 0.0
  without = create_state(config, networks)
  restored = checkpoint.Checkpointer(tmp_path, max_to_keep=2).restore_latest(without)
  assert restored.g_ema is None and restored.g_ema_collections is None
  chex.assert_trees_all_equal(jax.device_get(restored.g.params), jax.device_get(with_ema.g.params))


@pytest.mark.parametrize('spectral_norm', [True, False])
def test_checkpoint_from_before_the_spectral_norm_collection_restores(tmp_path, spectral_norm):
  """Runs saved while spectral norm's vectors sat in `batch_stats` (Flax's default
  collection), and runs without spectral norm saved before the collection existed, resume:
  the vectors in `spectral_norm`, BatchNorm's statistics apart."""
  import orbax.checkpoint as ocp
  from flax import traverse_util
  config = recap.get_config('sn_hinge,smoke' if spectral_norm else 'smoke')
  config.model.dcgan.G.spectral_norm = spectral_norm  # BatchNorm and spectral norm in one.
  config.train.batch_size = 4
  networks = Networks(config)
  state = create_state(config, networks)
  assert state.g.batch_stats and bool(state.g.spectral_norm) == spectral_norm

  def legacy(net):
    merged = {**traverse_util.flatten_dict(net.batch_stats),
              **traverse_util.flatten_dict(net.spectral_norm)}
    assert any(path[-1].endswith('/u') for path in merged) == spectral_norm
    return {'step': net.step, 'params': net.params, 'opt_state': net.opt_state,
            'batch_stats': traverse_util.unflatten_dict(merged)}
  # As the code before wrote it: no EMA kept is a None field.
  old_layout = {'g': legacy(state.g), 'd': legacy(state.d), 'step': state.step,
                'images_shown': state.images_shown, 'key': state.key, 'g_ema': None}
  with ocp.CheckpointManager(tmp_path.absolute()) as manager:
    manager.save(0, args=ocp.args.StandardSave(old_layout))
  restored = checkpoint.Checkpointer(tmp_path, max_to_keep=2).restore_latest(state)
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
  chex.assert_trees_all_equal(jax.tree_util.tree_leaves(jax.device_get(restored)),
                              jax.tree_util.tree_leaves(jax.device_get(state)))
  # And it trains on as the original does.
  step = jax.jit(steps.make_step_fn(config, networks))
  batch = {'image': np.full((4, 32, 32, 3), 100, np.uint8), 'label': np.arange(4, dtype=np.int32)}
  chex.assert_trees_all_equal(jax.device_get(step(restored, batch)[1]),
                              jax.device_get(step(state, batch)[1]))


def _two_checkpoints(tmp_path):
  config = recap.get_config('smoke')
  config.train.batch_size = 4
  networks = Networks(config)
  state = create_state(config, networks)
  step = jax.jit(steps.make_step_fn(config, networks))
  batch = {'image': np.full((4, 32, 32, 3), 100, np.uint8), 'label': np.arange(4, dtype=np.int32)}
  checkpointer = checkpoint.Checkpointer(tmp_path, max_to_keep=3)
  saved = []
  for _ in range(2):
    state, _ = step(state, batch)
    checkpointer.save(state)
    saved.append(jax.device_get(state))
  checkpointer.close()
  return state, saved


def _damage(directory):
  """Overwrites every array file of a checkpoint with garbage of the same size."""
  files = [p for p in directory.rglob('*') if p.is_file() and p.stat().st_size > 1000]
  assert files
  for path in files:
    path.write_bytes(b'\x13' * path.stat().st_size)


def test_a_damaged_latest_checkpoint_is_reported_and_the_one_before_used(tmp_path, capsys):
  state, saved = _two_checkpoints(tmp_path)
  _damage(tmp_path / '2')
  checkpointer = checkpoint.Checkpointer(tmp_path, max_to_keep=3)
  restored = checkpointer.restore_latest(state)
  assert int(restored.step) == 1
  chex.assert_trees_all_equal(jax.tree_util.tree_leaves(jax.device_get(restored)),
                              jax.tree_util.tree_leaves(saved[0]))
  out = capsys.readouterr().out
  assert 'checkpoint of step 2' in out and 'does not restore' in out and '2.broken' in out
  # Set aside, so that step 2 is saved afresh when the run gets there again.
  assert (tmp_path / '2.broken').is_dir() and checkpointer.all_steps() == [1]
  checkpointer.save(state)
  assert checkpointer.all_steps() == [1, 2]
  assert int(checkpoint.Checkpointer(tmp_path, 3).restore_latest(state).step) == 2


def test_when_no_checkpoint_restores_the_run_does_not_start_afresh(tmp_path):
  state, _ = _two_checkpoints(tmp_path)
  _damage(tmp_path / '1')
  _damage(tmp_path / '2')
  with pytest.raises(RuntimeError, match='No checkpoint in .* restores: step 2: .*; step 1: '):
    checkpoint.Checkpointer(tmp_path, max_to_keep=3).restore_latest(state)


def test_the_temporary_folder_of_an_interrupted_save_is_removed(tmp_path):
  state, _ = _two_checkpoints(tmp_path)
  stale = tmp_path / '3.orbax-checkpoint-tmp-1700000000'  # As a kill mid-save leaves it.
  (stale / 'd').mkdir(parents=True)
  (stale / 'd' / 'data').write_bytes(b'half')
  checkpointer = checkpoint.Checkpointer(tmp_path, max_to_keep=3)
  assert not stale.exists() and checkpointer.all_steps() == [1, 2]
  assert int(checkpointer.restore_latest(state).step) == 2


def test_a_workdir_of_another_design_fails_with_one_message(smoke_config, tmp_path):
  from configs import baseline
  from gan import loop
  smoke_config.log.tensorboard = False
  loop.train_and_evaluate(smoke_config, tmp_path, stop_at_step=2)
  stored = (tmp_path / 'config.json').read_text()
  other = baseline.get_config('smoke')  # The initial design: other layers and sizes.
  other.data.dir, other.log.progress_bar = smoke_config.data.dir, False
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r'step 2 .* is not a state of this config: d/opt_state/.*saved '
                           r'\(.*\), this config .*another design or size'):
    loop.train_and_evaluate(other, tmp_path)
  assert (tmp_path / 'config.json').read_text() == stored  # The run's own config kept.
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir()) == ['2']  # None set aside.


def test_a_save_that_fails_keeps_the_checkpoint_before_and_says_so(tmp_path, monkeypatch):
  import errno
  state, saved = _two_checkpoints(tmp_path)
  checkpointer = checkpoint.Checkpointer(tmp_path, max_to_keep=3)

  def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(checkpointer._manager, 'save', full_disk)
  later = state.replace(step=state.step + 1)
  with pytest.raises(OSError, match=r'step 3 .* failed .*No space left.*checkpoint of step 2 '
                                    r'is intact.*rerun the same command'):
    checkpointer.save(later)
  restored = checkpoint.Checkpointer(tmp_path, max_to_keep=3).restore_latest(state)
  chex.assert_trees_all_equal(jax.tree_util.tree_leaves(jax.device_get(restored)),
                              jax.tree_util.tree_leaves(saved[1]))


def test_the_checkpoint_folder_is_the_configs_or_the_workdirs_and_a_uri_stays_one(tmp_path):
  config = recap.get_config('smoke')
  assert checkpoint.directory_of(config.checkpoint, tmp_path) == tmp_path / 'checkpoints'
  config.checkpoint.directory = 'gs://bucket/run/ckpt'
  assert checkpoint.directory_of(config.checkpoint, tmp_path) == 'gs://bucket/run/ckpt'
  # A URI reaches orbax as written (pathlib would fold 'gs://' into 'gs:/'); a local
  # folder is made absolute, as the process may change its working directory.
  assert str(checkpoint._checkpoint_path('gs://bucket/run/ckpt')) == 'gs://bucket/run/ckpt'
  assert str(checkpoint._checkpoint_path('relative/ckpt')) == str(
      (tmp_path.cwd() / 'relative' / 'ckpt').absolute())
  # A run recorded before the field existed keeps its checkpoints in the workdir.
  from gan import config_files
  stored = json.loads(recap.get_config('smoke').to_json_best_effort())
  del stored['checkpoint']['directory']
  assert config_files.upgrade(stored)['checkpoint']['directory'] == ''
