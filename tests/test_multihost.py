"""Multi-host JAX for real: two CPU processes on localhost (gloo collectives) train one run.

Each process has one CPU device, so the global mesh spans two processes, each gathering
only its half of every batch, exactly as two hosts of a pod slice would.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from gan import evaluate, visualize

ROOT = Path(__file__).resolve().parents[1]


def _env(devices: int) -> dict:
  """The environment of a training process with `devices` CPU devices (the tests' own
  XLA_FLAGS force two)."""
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  if devices > 1:
    flags.append(f'--xla_force_host_platform_device_count={devices}')
  return {**os.environ, 'PYTHONPATH': str(ROOT), 'XLA_FLAGS': ' '.join(flags)}


def _command(workdir: Path, data_dir: Path, *extra: str) -> list[str]:
  return [sys.executable, str(ROOT / 'train.py'), '--config', 'configs/recap.py:smoke',
          '--workdir', str(workdir), f'--config.data.dir={data_dir}',
          '--config.log.progress_bar=False', '--config.train.log_every_steps=1', *extra]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _launch_two(workdir: Path, data_dir: Path, *extra: str) -> list[subprocess.Popen]:
  port = _free_port()
  return [subprocess.Popen(
      _command(workdir, data_dir, *extra, f'--coordinator_address=localhost:{port}',
               '--num_processes=2', f'--process_id={i}'),
      cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]


def _finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[str]:
  outputs = [p.communicate(timeout=timeout)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs


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
  two, one_by_two, one = tmp_path / 'two', tmp_path / 'one_by_two', tmp_path / 'one'
  # An evaluation each epoch too: G's samples and the classifier sharded over both hosts.
  evals = ('--config.eval.every=1 epoch', "--config.eval.metrics=('recognisability',)",
           '--config.eval.num_samples=40')
  started = time.monotonic()
  outputs = _finish(_launch_two(two, tiny_cifar_dir, *evals))
  two_seconds = time.monotonic() - started
  for workdir, devices in ((one_by_two, 2), (one, 1)):
    subprocess.run(_command(workdir, tiny_cifar_dir, *evals), cwd=ROOT, env=_env(devices),
                   check=True, capture_output=True)
  print(f'two processes: {two_seconds:.1f} s')

  # One set of outputs, written by process 0 alone.
  assert 'in 2 process(es)' in outputs[0] and 'Starting' not in outputs[1]
  records = _train_records(two)
  assert [r['step'] for r in records] == list(range(1, 13))
  assert _files(two) == _files(one_by_two)
  assert (two / 'progress.gif').exists() and (two / 'curves.png').exists()

  # Both evaluations ran (collectives over both processes), each logged once.
  evaluations = _eval_records(two)
  assert [r['step'] for r in evaluations] == [6, 12]
  assert all(r['eval/num_samples'] == 40 for r in evaluations)

  # The same global batch on one process, over two devices or one: the same steps to float
  # rounding. (On 2 free cores the two-device runs agree bit for bit; how XLA:CPU splits a
  # sum over threads can change the last bits, and GAN training then amplifies them step
  # by step, so only the first steps are compared.)
  for other in (one_by_two, one):
    for record, expected in zip(records[:3], _train_records(other)[:3]):
      assert record['step'] == expected['step']
      for key in ('G/loss', 'D/loss', 'D/grad_norm', 'G/grad_norm', 'D/acc_real', 'D/acc_fake'):
        np.testing.assert_allclose(record[key], expected[key], rtol=1e-4, err_msg=(other, key))


def test_sigterm_to_one_process_stops_both_at_one_step_then_resumes(tmp_path, tiny_cifar_dir):
  reference, stopped = tmp_path / 'reference', tmp_path / 'stopped'
  slow = ('--config.checkpoint.every=1 step', '--config.eval.samples_every=1 step')
  _finish(_launch_two(reference, tiny_cifar_dir))

  processes = _launch_two(stopped, tiny_cifar_dir, *slow)
  deadline = time.monotonic() + 300
  while len(_safe_records(stopped)) < 3:
    assert time.monotonic() < deadline and processes[1].poll() is None, 'no progress'
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGTERM)
  outputs = _finish(processes)
  stops = [int(out.split('Stopped by ')[1].split(' at step ')[1].split(';')[0])
           for out in outputs]
  assert 'Stopped by SIGTERM' in outputs[1] and 'another process' in outputs[0]
  assert stops[0] == stops[1] < 12, stops
  # One checkpoint of that step, whole, and the log ends there.
  latest = max(int(p.name) for p in (stopped / 'checkpoints').iterdir() if p.name.isdigit())
  assert latest == stops[0]
  assert [r['step'] for r in _train_records(stopped)] == list(range(1, stops[0] + 1))

  # The same two-process command resumes and ends as the run never stopped.
  _finish(_launch_two(stopped, tiny_cifar_dir, *slow))
  assert _train_records(stopped) == _train_records(reference)
  _assert_same_final_state(stopped, reference)


def _safe_records(workdir: Path) -> list[dict]:
  try:
    return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()
            if line.strip().endswith('}')]
  except FileNotFoundError:
    return []
