"""gan.bench's numbers are consistent with each other (speed itself is never asserted)."""

import json

import jax
import numpy as np

from gan import bench, models, steps
from gan.config_files import load_config
from gan.loop import make_mesh
from gan.state import create_state
from tests.conftest import load_benchmark


def test_bench_step_row_is_consistent():
  config = load_config('configs/recap.py:smoke')
  row = bench.bench_step(config, batch_size=8, num_steps=2, num_windows=3, warmup=1)
  assert row['batch_size'] == 8
  assert row['img_per_sec_min'] <= row['img_per_sec'] <= row['img_per_sec_max']
  np.testing.assert_allclose(row['ms_per_step'], 1000 * 8 / row['img_per_sec'])
  assert row['gflop_per_step'] > 0 and row['compile_s'] > 0
  np.testing.assert_allclose(row['gflop_per_sec'],
                             row['gflop_per_step'] * row['img_per_sec'] / 8)
  line = bench.format_rows([{'config': 'recap', **row}]).splitlines()[-1]
  assert line.split()[:3] == ['recap', '8', f'{row["img_per_sec"]:.1f}']


def test_bench_step_times_the_reference_once_a_round():
  """With a reference, each round times it once, and the row's statistics and ratios
  come from the two sides' own windows."""
  config = load_config('configs/recap.py:smoke')
  calls = []

  def reference():
    calls.append(len(calls))
    return [100.0, 300.0]  # Median 200.

  row = bench.bench_step(config, batch_size=8, num_steps=1, num_windows=2, warmup=1,
                         reference=reference, rounds=3)
  assert calls == [0, 1, 2]
  assert row['torch_img_per_sec'] == 200.0
  assert (row['torch_img_per_sec_min'], row['torch_img_per_sec_max']) == (100.0, 300.0)
  np.testing.assert_allclose(row['jax_over_torch'], row['img_per_sec'] / 200.0)
  assert len(row['jax_over_torch_rounds']) == 3


def test_flops_of_the_lowered_step_match_the_compiled_step_on_cpu():
  """gan.bench counts FLOPs of the step lowered for the CPU, before compilation (on GPU
  the compiled count omits cuDNN's convolutions); on the CPU, where both count every
  convolution, they must agree with the sharded step's compiled count."""
  assert jax.default_backend() == 'cpu'
  config = load_config('configs/recap.py:smoke')
  generator, discriminator = models.build_models(config)
  state = create_state(config, generator, discriminator)
  batch = np.zeros((64, 32, 32, 3), np.uint8)
  train_step = steps.make_train_step(config, generator, discriminator, make_mesh())
  lowered = train_step.lower(state, batch)
  # Backend passes change the count a little: 7% here, 0.4% for recap at batch 256.
  counted = bench.step_flops(steps.make_step_fn(config, generator, discriminator), state, batch)
  assert counted > 1e9  # G and D forward and backward over 64 images.
  np.testing.assert_allclose(counted, bench._flops(lowered.compile()), rtol=0.1)


def test_matmul_peak_is_a_positive_rate():
  assert bench.matmul_peak_gflops(size=256, repeats=3) > 0


def test_per_network_times_g_and_both_d_passes(capsys):
  load_benchmark('per_network').main(['--framework', 'jax', '--config',
                                      'configs/recap.py:smoke', '--batch_size', '4',
                                      '--repeats', '1'])
  report = json.loads(capsys.readouterr().out)
  assert report['framework'] == 'jax' and report['batch_size'] == 4
  assert set(report['median_ms']) == {'G', 'D fake (params and input)', 'D real (params)'}
  assert all(ms > 0 for ms in report['median_ms'].values())
