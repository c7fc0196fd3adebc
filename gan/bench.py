r"""Times the full train step of configs on whatever device is present.

  python -m gan.bench --config configs/recap.py --config configs/baseline.py
  python -m gan.bench --config configs/recap.py --batch_sizes 64,128,256,512,1024 --json out.json
  python -m gan.bench --config configs/recap.py --set model.compute_dtype=bfloat16   # GPU/TPU

For each (config, batch size): compile time, steady-state img/s as the median (with min
and max) of `--windows` timed windows of `--steps` steps each after a warm-up, the step's
FLOPs from XLA's cost analysis of the step as lowered, the FLOP rate they imply and its
fraction of the device's matmul rate in the configs' compute dtype (measured first,
`matmul_peak_gflops`), and peak memory (the device's allocator peak where it reports one, else the process'
peak RSS; either is the peak so far, which only grows across the rows of one
invocation). Batches are random uint8 images already on the device: this times the
step, not the input pipeline.

`--torch` also times the PyTorch reference of the config's family (benchmarks/torch_dcgan.py,
benchmarks/torch_resnet.py) on the same device,
in a process of its own, in `--rounds` rounds that alternate which framework goes first;
each framework's img/s is the median over all its windows, and each round's ratio is
kept. A shared process slowed PyTorch's step when the two took turns in it, and a CPU's
speed drifts within minutes, so neither a shared process nor one round each is fair
(docs/performance.md).
On a GPU, JAX's process keeps its preallocated device memory (75% by default) while
PyTorch runs; lower XLA_PYTHON_CLIENT_MEM_FRACTION if PyTorch runs out of memory.

  python -m gan.bench --config configs/recap.py --torch --rounds 4 --steps 3 --windows 5

  python -m gan.bench --inception_batch_sizes 25,50,100

times the FID Inception's feature extraction (resize to 299 and the network, jitted) the
same way: img/s as the median of `--windows` windows of one batch each.
"""

import functools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from gan import cpu_defaults

# As train.py does; PyTorch's reference runs in this process and gets the same malloc.
# Before the imports below start threads (see its docstring); not when tests import this.
if __name__ == '__main__':
  cpu_defaults.apply_xla_flags()
_MALLOC_TUNED = __name__ == '__main__' and cpu_defaults.tune_malloc()

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from gan.config_files import apply_overrides, load_config  # noqa: E402
from gan.timing import bench_inception, bench_step, matmul_peak_gflops  # noqa: E402

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The command line. Defined when run as a program only, so that tests can import this
  module next to others that define a --config flag."""
  flags.DEFINE_multi_string('config', None, 'Config files (repeatable).')
  flags.DEFINE_multi_string('set', [], 'dotted.key=value applied to every config, e.g. '
                            'model.compute_dtype=bfloat16 (repeatable; the PyTorch '
                            'reference stays float32).')
  flags.DEFINE_string('batch_sizes', '', "Comma-separated batch sizes; empty: each config's "
                      'train.batch_size.')
  flags.DEFINE_integer('steps', 5, 'Steps per timed window.')
  flags.DEFINE_integer('windows', 5, 'Timed windows (the median is reported).')
  flags.DEFINE_integer('warmup', 2, 'Untimed steps after compilation.')
  flags.DEFINE_string('json', '', 'Also write the results to this JSON file.')
  flags.DEFINE_string('plot', '', 'Also plot img/s against batch size into this PNG.')
  flags.DEFINE_bool('torch', False, 'Also time the PyTorch reference '
                    '(benchmarks/torch_<family>.py) of each config, and report JAX/PyTorch.')
  flags.DEFINE_integer('rounds', 3, 'With --torch: rounds of --windows windows each, '
                       'alternating which framework goes first.')
  flags.DEFINE_string('inception_batch_sizes', '', 'Comma-separated batch sizes at which to '
                      'time the FID Inception feature extractor (gan.metrics.inception); '
                      'empty: not timed.')


_REPO = Path(__file__).resolve().parents[1]
# The PyTorch reference of each model family that has one, in benchmarks/.
TORCH_REFERENCES = {'dcgan': 'torch_dcgan.py', 'resnet': 'torch_resnet.py'}


def torch_reference_script(model_name: str) -> Path:
  if model_name not in TORCH_REFERENCES:
    raise ValueError(f'No PyTorch reference for model.name={model_name!r}: --torch times '
                     f'{sorted(TORCH_REFERENCES)}.')
  return _REPO / 'benchmarks' / TORCH_REFERENCES[model_name]


def torch_reference_rates(config_path: str, overrides: list[str], batch_size: int,
                          num_steps: int, num_windows: int, warmup: int,
                          env: dict | None = None) -> list[float]:
  """img/s of each window of the PyTorch reference's step (`benchmarks/torch_<family>.py`),
  timed in a fresh process; records PyTorch's version, threads and device in `env`."""
  config = load_config(config_path)
  apply_overrides(config, overrides)
  command = [sys.executable, str(torch_reference_script(config.model.name)), '--config',
             config_path, '--batch_size', str(batch_size), '--steps', str(num_steps),
             '--windows', str(num_windows), '--warmup', str(warmup)]
  command += [arg for override in overrides for arg in ('--set', override)]
  # The repository on the path, so that the reference imports gan without an install.
  child_env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
      p for p in (str(_REPO), os.environ.get('PYTHONPATH')) if p)}
  result = subprocess.run(command, capture_output=True, text=True, env=child_env,
                          check=False)
  if result.returncode:
    raise RuntimeError(f'The PyTorch reference failed ({" ".join(command)}):\n'
                       f'{result.stderr[-2000:]}')
  report = json.loads(result.stdout.strip().splitlines()[-1])
  if env is not None:
    env.update({key: report[key] for key in ('torch', 'torch_threads', 'torch_device')})
  return report['img_per_sec']


def environment() -> dict:
  device = jax.devices()[0]
  return {'device': f'{jax.device_count()} x {device.device_kind} ({device.platform})',
          'host': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
          'jax': jax.__version__, 'python': platform.python_version(),
          'xla_flags': os.environ.get('XLA_FLAGS', ''), 'malloc_tuned': _MALLOC_TUNED}


def format_rows(rows: list[dict]) -> str:
  header = (f'{"config":<34}{"batch":>6}{"img/s":>9}{"(min-max)":>16}{"ms/step":>9}'
            f'{"CPU ms":>8}{"compile s":>10}{"GFLOP/step":>11}{"GFLOP/s":>9}{"% peak":>8}{"peak MB":>9}'
            f'{"torch img/s":>12}{"JAX/torch":>10}')
  lines = [header, '-' * len(header)]
  for r in rows:
    spread = f'({r["img_per_sec_min"]:.0f}-{r["img_per_sec_max"]:.0f})'
    lines.append(f'{r["config"]:<34}{r["batch_size"]:>6}{r["img_per_sec"]:>9.1f}{spread:>16}'
                 f'{r["ms_per_step"]:>9.0f}{r.get("cpu_ms_per_step", float("nan")):>8.0f}'
                 f'{r["compile_s"]:>10.1f}{r["gflop_per_step"]:>11.1f}'
                 f'{r["gflop_per_sec"]:>9.1f}'
                 f'{100 * r.get("fraction_of_matmul_peak", float("nan")):>8.0f}'
                 f'{r["peak_memory_mb"]:>9.0f}'
                 f'{r.get("torch_img_per_sec", float("nan")):>12.1f}'
                 f'{r.get("jax_over_torch", float("nan")):>10.2f}')
  return '\n'.join(lines)


def plot_scaling(rows: list[dict], env: dict, path: str) -> None:
  """img/s against batch size, one line per config (dashed: its PyTorch reference)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  for config in dict.fromkeys(r['config'] for r in rows):
    mine = sorted((r for r in rows if r['config'] == config), key=lambda r: r['batch_size'])
    batch = [r['batch_size'] for r in mine]
    line, = ax.plot(batch, [r['img_per_sec'] for r in mine], marker='o', label=f'{config} (JAX)')
    if all('torch_img_per_sec' in r for r in mine):
      ax.plot(batch, [r['torch_img_per_sec'] for r in mine], marker='x', linestyle='--',
              color=line.get_color(), label=f'{config} (PyTorch)')
  ax.set_xscale('log', base=2)
  ax.set(xlabel='batch size', ylabel='img/s (train step)', title=f'Train step speed: {env["device"]}')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not FLAGS.config and not FLAGS.inception_batch_sizes:
    raise app.UsageError('Give --config (train step) and/or --inception_batch_sizes.')
  rows, inception_rows = [], []
  # The yardstick in the configs' compute dtype (after --set), float32 when they differ.
  dtypes = set()
  for path in FLAGS.config or []:
    config = load_config(path)
    apply_overrides(config, FLAGS.set)
    dtypes.add(config.model.compute_dtype)
  peak_dtype = dtypes.pop() if len(dtypes) == 1 else 'float32'
  peak = matmul_peak_gflops(dtype=peak_dtype) if FLAGS.config else float('nan')
  env = environment()
  if FLAGS.config:
    env['matmul_peak_gflop_per_sec'] = peak
    env['matmul_peak_dtype'] = peak_dtype

  def write_json() -> None:
    """After every row, so that a long run stopped part way keeps what it measured."""
    if FLAGS.json:
      with open(FLAGS.json, 'w') as f:
        json.dump({'environment': env, 'results': rows, 'inception': inception_rows}, f,
                  indent=2)

  for path in FLAGS.config or []:
    config = load_config(path)
    apply_overrides(config, FLAGS.set)
    if FLAGS.torch:
      torch_reference_script(config.model.name)  # No reference: fail before timing JAX.
    sizes = ([int(b) for b in FLAGS.batch_sizes.split(',')] if FLAGS.batch_sizes
             else [config.train.batch_size])
    for batch_size in sizes:
      reference = (functools.partial(torch_reference_rates, path, FLAGS.set, batch_size,
                                     FLAGS.steps, FLAGS.windows, FLAGS.warmup, env)
                   if FLAGS.torch else None)
      row = {'config': ' '.join([path, *FLAGS.set]),
             **bench_step(config, batch_size, FLAGS.steps, FLAGS.windows, FLAGS.warmup,
                          reference, FLAGS.rounds)}
      row['fraction_of_matmul_peak'] = row['gflop_per_sec'] / peak
      rows.append(row)
      print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
      write_json()
  for batch_size in [int(b) for b in FLAGS.inception_batch_sizes.split(',') if b]:
    inception_rows.append(bench_inception(batch_size, FLAGS.windows))
    r = inception_rows[-1]
    print(f'FID Inception, batch {batch_size}: {r["img_per_sec"]:.2f} img/s '
          f'({r["img_per_sec_min"]:.2f}-{r["img_per_sec_max"]:.2f}); 10k images in '
          f'{r["seconds_per_10k"] / 60:.1f} min; compile + first batch '
          f'{r["compile_and_first_batch_s"]:.1f} s', flush=True)
    write_json()
  print(f'\n{env}')
  if rows:
    print(format_rows(rows))
  if FLAGS.plot and rows:
    plot_scaling(rows, env, FLAGS.plot)
  write_json()


if __name__ == '__main__':
  _define_flags()
  app.run(main)
