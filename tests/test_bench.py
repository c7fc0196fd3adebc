"""gan.bench's numbers are consistent with each other (speed itself is never asserted)."""

import numpy as np

from gan import bench
from gan.config_files import load_config


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


def test_matmul_peak_is_a_positive_rate():
  assert bench.matmul_peak_gflops(size=256, repeats=3) > 0
