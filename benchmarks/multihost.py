"""One run trained by two processes on this machine against the same run in one process.

Multi-host JAX without a cluster: two CPU processes on localhost join one run through
`train.py --coordinator_address=localhost:PORT --num_processes=2 --process_id=i`, each
with one CPU device, so the global mesh spans both processes (gloo collectives), exactly
as two hosts of a pod slice would. The same config then runs in one process over two CPU
devices (the same mesh shape) and over one device (the same global batch, undivided).

Printed: the wall time of each (process start, compilation and data loading included),
whether the two-process run equals the one-process two-device run bit for bit, and the
largest relative difference of the logged losses, accuracies and gradient norms from the
one-device run over the first steps and over the whole run.

  python benchmarks/multihost.py [--config configs/recap.py:smoke] [--data_dir DIR] \
      [--config.train.num_epochs=2 ...]   (overrides go to every train.py)

`tests/test_multihost.py` launches its processes through this module's helpers.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # Run as a program from anywhere.
  sys.path.insert(0, str(ROOT))

from gan import visualize  # noqa: E402

COMPARED = ('G/loss', 'D/loss', 'D/acc_real', 'D/acc_fake', 'G/grad_norm', 'D/grad_norm')


def env(devices: int) -> dict:
  """The environment of a training process with `devices` CPU devices (XLA_FLAGS' forced
  device count replaced)."""
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  if devices > 1:
    flags.append(f'--xla_force_host_platform_device_count={devices}')
  # Without a batch system's variables: these processes join by the explicit flags only.
  inherited = {k: v for k, v in os.environ.items()
               if not k.startswith(('SLURM_', 'OMPI_', 'PMI_', 'PMIX_'))}
  return {**inherited, 'PYTHONPATH': str(ROOT), 'XLA_FLAGS': ' '.join(flags)}


def command(config: str, workdir: Path, *extra: str) -> list[str]:
  return [sys.executable, str(ROOT / 'train.py'), '--config', config, '--workdir', str(workdir),
          '--config.log.progress_bar=False', '--config.train.log_every_steps=1', *extra]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def launch(config: str, workdir: Path, num_processes: int, *extra: str, devices: int = 1,
           process_env: list[dict] | None = None,
           process_args: list[list[str]] | None = None) -> list[subprocess.Popen]:
  """`num_processes` training processes of one run, one CPU device each; a single process
  (a plain run, no cluster) gets `devices` CPU devices. `process_env[i]` and
  `process_args[i]`: variables and flags of process i's own (as on a host of its own; a
  flag given again overrides)."""
  process_env = process_env or [{}] * num_processes
  process_args = process_args or [[]] * num_processes
  start = lambda args, devices, own: subprocess.Popen(
      args, cwd=ROOT, env={**env(devices), **own}, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  if num_processes == 1:
    return [start(command(config, workdir, *extra, *process_args[0]), devices,
                  process_env[0])]
  port = free_port()
  return [start(command(config, workdir, *extra, *process_args[i],
                        f'--coordinator_address=localhost:{port}',
                        f'--num_processes={num_processes}', f'--process_id={i}'),
                1, process_env[i])
          for i in range(num_processes)]


def finish(processes: list[subprocess.Popen], timeout: float = 600) -> list[str]:
  """The processes' outputs, once all ended; raises naming the output of one that failed.
  None outlives a failure here: a peer left waiting in a collective is killed."""
  try:
    outputs = [p.communicate(timeout=timeout)[0] for p in processes]
  finally:
    stop_all(processes)
  for p, out in zip(processes, outputs):
    if p.returncode != 0:
      raise RuntimeError(f'A training process exited with {p.returncode}:\n{out[-3000:]}')
  return outputs


def stop_all(processes: list[subprocess.Popen]) -> None:
  """Kills those of `processes` still running."""
  for p in processes:
    if p.poll() is None:
      p.kill()
      p.communicate()


def train_records(workdir: Path) -> list[dict]:
  """The per-step records of a run's metrics.jsonl, without its timings."""
  return [{k: v for k, v in r.items() if k not in ('img_per_sec', 'time_s', 'cpu_s')}
          for r in visualize.read_metrics(workdir / 'metrics.jsonl') if 'G/loss' in r]


def largest_relative_difference(records: list[dict], expected: list[dict]) -> float:
  worst = 0.0
  for record, wanted in zip(records, expected, strict=True):
    for key in COMPARED:
      scale = max(abs(wanted[key]), 1e-6)
      worst = max(worst, abs(record[key] - wanted[key]) / scale)
  return worst


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/recap.py:smoke')
  parser.add_argument('--data_dir', default=os.environ.get('GAN_CIFAR10_DIR', ''),
                      help='cifar-10-batches-bin (default: $GAN_CIFAR10_DIR)')
  parser.add_argument('--first_steps', type=int, default=3,
                      help='the steps compared before GAN training amplifies rounding')
  args, overrides = parser.parse_known_args()  # --config.<field>=<value> go to train.py.
  extra = [f'--config.data.dir={args.data_dir}'] if args.data_dir else []
  extra += overrides
  with tempfile.TemporaryDirectory() as scratch:
    runs = {}
    for name, processes, devices in (('2 processes x 1 device', 2, 1),
                                     ('1 process x 2 devices', 1, 2),
                                     ('1 process x 1 device', 1, 1)):
      workdir = Path(scratch) / name.replace(' ', '_')
      started = time.monotonic()
      finish(launch(args.config, workdir, processes, *extra, devices=devices))
      runs[name] = (time.monotonic() - started, train_records(workdir))
    two, by_two, one = (runs[name][1] for name in runs)
    for name, (seconds, records) in runs.items():
      print(f'{name:24s} {seconds:6.1f} s  {len(records)} steps')
    print(f'2 processes == 1 process x 2 devices, every record bit for bit: {two == by_two}')
    first = args.first_steps
    print(f'largest relative difference from 1 device, first {first} steps: '
          f'{largest_relative_difference(two[:first], one[:first]):.2e}; all '
          f'{len(two)} steps: {largest_relative_difference(two, one):.2e}')


if __name__ == '__main__':
  main()
