"""Multi-host JAX for real: two CPU processes on localhost (gloo collectives) train one run.

Each process has one CPU device, so the global mesh spans two processes, each gathering
only its half of every batch, exactly as two hosts of a pod slice would.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from gan import evaluate, visualize
from gan.metrics import weights
from tests.conftest import load_benchmark

# The launcher of benchmarks/multihost.py: train.py processes joined over localhost.
multihost = load_benchmark('multihost')
SMOKE = 'configs/recap.py:smoke'
TORCHSCRIPT = os.environ.get('GAN_FID_TORCHSCRIPT', '')


def _launch_two(workdir: Path, data_dir: Path, *extra: str) -> list[subprocess.Popen]:
  return multihost.launch(SMOKE, workdir, 2, f'--config.data.dir={data_dir}', *extra)


def _run_one(workdir: Path, data_dir: Path, devices: int, *extra: str,
             env: dict | None = None) -> None:
  multihost.finish(multihost.launch(SMOKE, workdir, 1, f'--config.data.dir={data_dir}', *extra,
                                    devices=devices, process_env=[env or {}]))


_finish = multihost.finish
_train_records = multihost.train_records


def _eval_records(workdir: Path) -> list[dict]:
  return [r for r in visualize.read_metrics(workdir / 'metrics.jsonl') if 'eval/recognisable' in r]


def _assert_same_final_state(workdir: Path, other: Path) -> None:
  final, wanted = (jax.device_get(evaluate.load_run(w)[2]) for w in (workdir, other))
  assert int(final.step) == int(wanted.step)
  for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(wanted)):
    np.testing.assert_array_equal(a, b)


def _files(workdir: Path) -> list[str]:
  return sorted(str(p.relative_to(workdir)) for p in workdir.rglob('*')
                if 'checkpoints' not in p.parts and 'tensorboard' not in p.parts)


def test_two_processes_train_one_run_equal_to_one_process(tmp_path, tiny_cifar_dir):
  two, one = tmp_path / 'two', tmp_path / 'one'
  # An evaluation each epoch too: G's samples and the classifier sharded over both hosts.
  evals = ('--config.eval.every=1 epoch', "--config.eval.metrics=('recognisability',)",
           '--config.eval.num_samples=40')
  # Each host gathers its own devices' rows of every batch (data.on_device=False; the
  # other tests here gather on the devices).
  outputs = _finish(_launch_two(two, tiny_cifar_dir, *evals, '--config.data.on_device=False'))
  _run_one(one, tiny_cifar_dir, 1, *evals)

  # One set of outputs, written by process 0 alone: the files of a one-process run.
  assert 'in 2 process(es)' in outputs[0] and 'Starting' not in outputs[1]
  records = _train_records(two)
  assert [r['step'] for r in records] == list(range(1, 13))
  assert _files(two) == _files(one)
  assert (two / 'progress.gif').exists() and (two / 'curves.png').exists()

  # Both evaluations ran (collectives over both processes), each logged once.
  evaluations = _eval_records(two)
  assert [r['step'] for r in evaluations] == [6, 12]
  assert all(r['eval/num_samples'] == 40 for r in evaluations)

  # The same global batch undivided, on one device: the same steps to float rounding.
  # (The sums over devices add in another order, and GAN training amplifies the difference
  # step by step, so only the first steps are compared. benchmarks/multihost.py shows the
  # two processes equal to one process over two devices bit for bit.)
  for record, expected in zip(records[:3], _train_records(one)[:3], strict=True):
    assert record['step'] == expected['step']
    for key in multihost.COMPARED:
      np.testing.assert_allclose(record[key], expected[key], rtol=1e-4, err_msg=key)


@pytest.mark.skipif(not TORCHSCRIPT, reason='needs $GAN_FID_TORCHSCRIPT (default_1.pt)')
def test_two_hosts_score_fid_together_when_only_one_has_the_statistics(tmp_path, tiny_cifar_dir):
  # Each process a cache of its own, as hosts with their own disks have: both with the FID
  # Inception's weights, and a one-process run leaves the statistics in process 0's only.
  caches = [tmp_path / 'cache0', tmp_path / 'cache1']
  for cache in caches:
    weights.main(['--torchscript', TORCHSCRIPT, '--out', str(cache / weights.FILENAME)])
  scored = ('--config.train.num_epochs=1', '--config.eval.every=1 epoch',
            "--config.eval.metrics=('fid', 'kid')",
            '--config.eval.num_samples=20', '--config.eval.reference_split=test',
            '--config.eval.batch_size=10')
  one, two = tmp_path / 'one', tmp_path / 'two'
  _run_one(one, tiny_cifar_dir, 1, *scored, env={'GAN_CACHE_DIR': str(caches[0])})
  assert len(list(caches[0].glob('fid-stats-*.npz'))) == 1

  # Process 1 lacks them: both compute them together (the Inception is sharded over both),
  # rather than one waiting in a collective the other skips; process 0 alone writes.
  _finish(multihost.launch(SMOKE, two, 2, f'--config.data.dir={tiny_cifar_dir}', *scored,
                           process_env=[{'GAN_CACHE_DIR': str(c)} for c in caches]))
  assert not [p.name for p in caches[1].iterdir() if p.name != weights.FILENAME]
  scores = [[r for r in visualize.read_metrics(w / 'metrics.jsonl') if 'eval/fid' in r]
            for w in (two, one)]
  assert [r['step'] for r in scores[0]] == [6]
  # G after 6 steps, equal to float rounding in both runs: so are its scores.
  for key in ('eval/fid', 'eval/kid'):
    np.testing.assert_allclose(scores[0][0][key], scores[1][0][key], rtol=1e-2, err_msg=key)


# A checkpoint and a grid after every step, so that stops land between saves.
_EVERY_STEP = ('--config.checkpoint.every=1 step', '--config.eval.samples_every=1 step')


def _wait_for_records(workdir: Path, processes: list[subprocess.Popen], count: int) -> None:
  deadline = time.monotonic() + 300
  while len(_safe_records(workdir)) < count:
    if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
      multihost.stop_all(processes)
      raise AssertionError(f'no progress to {count} steps: {len(_safe_records(workdir))}')
    time.sleep(0.05)


def test_sigterm_to_one_host_stops_both_and_kill_9_loses_nothing(tmp_path, tiny_cifar_dir):
  reference, run = tmp_path / 'reference', tmp_path / 'run'
  _finish(_launch_two(reference, tiny_cifar_dir))
  # The checkpoints in a folder of their own outside the workdir, as a bucket every host
  # sees would be (config.checkpoint.directory).
  shared = tmp_path / 'shared' / 'ckpt'
  flags = (*_EVERY_STEP, f'--config.checkpoint.directory={shared}')

  # A SIGTERM to process 1: both stop after the same step, with one checkpoint of it.
  processes = _launch_two(run, tiny_cifar_dir, *flags)
  _wait_for_records(run, processes, 3)
  processes[1].send_signal(signal.SIGTERM)
  outputs = _finish(processes)
  assert 'Stopped by SIGTERM' in outputs[1] and 'another process' in outputs[0], outputs
  stops = [int(out.split('Stopped by ')[1].split(' at step ')[1].split(';')[0])
           for out in outputs]
  assert stops[0] == stops[1] <= 8, stops
  assert not (run / 'checkpoints').exists()
  assert max(_checkpoint_steps(shared)) == stops[0]
  assert [r['step'] for r in _train_records(run)] == list(range(1, stops[0] + 1))

  # Resumed by the same command, then a kill -9 of process 1. The survivor's next
  # collective fails (gloo: connection closed) and JAX's coordination service would end
  # it after its heartbeat timeout (100 s); a scheduler takes the whole job down at once,
  # and so does this test a moment later, mid-step or mid-save.
  processes = _launch_two(run, tiny_cifar_dir, *flags)
  _wait_for_records(run, processes, stops[0] + 2)
  processes[1].kill()
  time.sleep(1.0)
  processes[0].kill()
  multihost.stop_all(processes)
  assert stops[0] < max(_checkpoint_steps(shared)) < 12

  # Resumed again: the run ends as if never stopped, each step logged once, record for
  # record and bit for bit; no temporary checkpoint folder is left.
  outputs = _finish(_launch_two(run, tiny_cifar_dir, *flags))
  assert 'Resuming at step' in outputs[0]
  assert [r['step'] for r in _train_records(run)] == list(range(1, 13))
  assert _train_records(run) == _train_records(reference)
  _assert_same_final_state(run, reference)  # gan.evaluate finds the checkpoint folder too.
  leftovers = [p.name for p in shared.iterdir() if not p.name.isdigit()]
  assert not leftovers, leftovers


def test_a_failure_of_process_0_alone_stops_the_other_at_once(tmp_path, tiny_cifar_dir):
  not_a_folder = tmp_path / 'a_file'
  not_a_folder.write_text('')
  processes = _launch_two(not_a_folder, tiny_cifar_dir)
  try:
    outputs = [p.communicate(timeout=120)[0] for p in processes]
  finally:
    multihost.stop_all(processes)
  assert all(p.returncode != 0 for p in processes)
  assert f'The run folder {not_a_folder} cannot be written (Not a directory' in outputs[0], \
      outputs[0][-2000:]
  assert 'another process failed while preparing the run folder' in outputs[1], outputs[1][-2000:]


def _checkpoint_steps(directory: Path) -> list[int]:
  return [int(p.name) for p in directory.iterdir() if p.name.isdigit()]


def _safe_records(workdir: Path) -> list[dict]:
  """The records so far of a run that may be writing (a torn last line left out)."""
  try:
    return visualize.read_metrics(workdir / 'metrics.jsonl')
  except FileNotFoundError:
    return []


def test_one_process_decisions_are_its_own_and_bad_flags_are_refused():
  from gan import distributed
  assert distributed.is_main() and distributed.describe() == ''
  assert distributed.any_process([True, False]) == [True, False]
  assert distributed.from_main(3.5) == 3.5
  distributed.initialize()  # No flags: a one-process run, nothing joined.
  assert jax.process_count() == 1
  for bad in (dict(coordinator_address='localhost:1234'),  # No process count.
              dict(coordinator_address='localhost:1234', num_processes=2, process_id=2),
              dict(num_processes=2, process_id=0),  # No coordinator.
              dict(process_id=1)):  # Alone: no silent one-process run.
    try:
      distributed.initialize(**bad)
    except ValueError as error:
      assert '--coordinator_address' in str(error)
    else:
      raise AssertionError(f'{bad} was accepted')


def test_hosts_that_see_different_checkpoints_stop_before_training(tmp_path, tiny_cifar_dir):
  done, fresh = tmp_path / 'done', tmp_path / 'fresh'
  _run_one(done, tiny_cifar_dir, 1)
  # Each host its own workdir and so its own checkpoints folder (disks of their own):
  # process 0 would resume at step 12 while process 1 started afresh.
  processes = multihost.launch(SMOKE, done, 2, f'--config.data.dir={tiny_cifar_dir}',
                               process_args=[[], [f'--workdir={fresh}']])
  try:
    outputs = [p.communicate(timeout=120)[0] for p in processes]
  finally:
    multihost.stop_all(processes)
  for process, output in zip(processes, outputs):
    assert process.returncode != 0
    assert 'the processes see different latest checkpoints' in output, output[-2000:]
    assert '[12, -1] (by process). Every host must see the same checkpoint folder' in output


def test_multihost_without_a_cluster_says_what_to_give_instead(tmp_path):
  process = multihost.launch(SMOKE, tmp_path / 'run', 1, '--multihost')[0]
  output = process.communicate(timeout=120)[0]  # No SLURM or Open MPI variables reach it.
  assert process.returncode != 0
  assert '--multihost: JAX found no cluster to join' in output, output[-2000:]
  assert not (tmp_path / 'run').exists()
