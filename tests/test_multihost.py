"""Multi-host JAX for real: two CPU processes on localhost (gloo collectives) train one run.

Each process has one CPU device, so the global mesh spans two processes, each gathering
only its half of every batch, exactly as two hosts of a pod slice would.
"""

import json
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np

from gan import evaluate, visualize
from tests.conftest import load_benchmark

# The launcher of benchmarks/multihost.py: train.py processes joined over localhost.
multihost = load_benchmark('multihost')
SMOKE = 'configs/recap.py:smoke'


def _launch_two(workdir: Path, data_dir: Path, *extra: str) -> list[subprocess.Popen]:
  return multihost.launch(SMOKE, workdir, 2, f'--config.data.dir={data_dir}', *extra)


def _run_one(workdir: Path, data_dir: Path, devices: int, *extra: str) -> None:
  multihost.finish(multihost.launch(SMOKE, workdir, 1, f'--config.data.dir={data_dir}', *extra,
                                    devices=devices))


_finish = multihost.finish


def _train_records(workdir: Path) -> list[dict]:
  timeless = lambda r: {k: v for k, v in r.items() if k not in ('img_per_sec', 'time_s')}
  return [timeless(r) for r in visualize.read_metrics(workdir / 'metrics.jsonl')
          if 'G/loss' in r]


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


# A checkpoint and a grid after every step, so that stops land between saves.
_EVERY_STEP = ('--config.checkpoint.every=1 step', '--config.eval.samples_every=1 step')


def _wait_for_records(workdir: Path, processes: list[subprocess.Popen], count: int) -> None:
  deadline = time.monotonic() + 300
  while len(_safe_records(workdir)) < count:
    assert time.monotonic() < deadline and all(p.poll() is None for p in processes), 'no progress'
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
  stops = [int(out.split('Stopped by ')[1].split(' at step ')[1].split(';')[0])
           for out in outputs]
  assert 'Stopped by SIGTERM' in outputs[1] and 'another process' in outputs[0]
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
  for process in processes:
    process.communicate(timeout=60)
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
  outputs = [p.communicate(timeout=120)[0] for p in processes]
  assert all(p.returncode != 0 for p in processes)
  assert f'The run folder {not_a_folder} cannot be written (Not a directory' in outputs[0], \
      outputs[0][-2000:]
  assert 'another process failed while preparing the run folder' in outputs[1], outputs[1][-2000:]


def _checkpoint_steps(directory: Path) -> list[int]:
  return [int(p.name) for p in directory.iterdir() if p.name.isdigit()]


def _safe_records(workdir: Path) -> list[dict]:
  try:
    return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()
            if line.strip().endswith('}')]
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
              dict(num_processes=2, process_id=0)):  # No coordinator.
    try:
      distributed.initialize(**bad)
    except ValueError as error:
      assert '--coordinator_address' in str(error)
    else:
      raise AssertionError(f'{bad} was accepted')


def test_multihost_without_a_cluster_says_what_to_give_instead(tmp_path):
  process = multihost.launch(SMOKE, tmp_path / 'run', 1, '--multihost')[0]
  output = process.communicate(timeout=120)[0]
  assert process.returncode != 0
  assert '--multihost: JAX found no cluster to join' in output, output[-2000:]
  assert not (tmp_path / 'run').exists()
