"""gan.bench's numbers are consistent with each other (speed itself is never asserted)."""

import json
import os

import jax
import numpy as np
import pytest

from gan import bench, parallel, steps, timing
from gan.config_files import load_config
from gan.networks import Networks
from gan.state import create_state
from tests.conftest import load_benchmark


def test_bench_step_row_is_consistent():
  config = load_config('configs/recap.py:smoke')
  row = timing.bench_step(config, batch_size=8, num_steps=2, num_windows=3, warmup=1)
  assert row['batch_size'] == 8
  assert row['img_per_sec_min'] <= row['img_per_sec'] <= row['img_per_sec_max']
  np.testing.assert_allclose(row['ms_per_step'], 1000 * 8 / row['img_per_sec'])
  # CPU time per step: positive, and at most every core busy for the slowest window.
  slowest_ms = 1000 * 8 / row['img_per_sec_min']
  assert 0 < row['cpu_ms_per_step'] <= 1.1 * len(os.sched_getaffinity(0)) * slowest_ms
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

  row = timing.bench_step(config, batch_size=8, num_steps=1, num_windows=2, warmup=1,
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
  networks = Networks(config)
  state = create_state(config, networks)
  batch = timing.random_batch(config, 64)
  train_step = steps.make_train_step(config, networks, parallel.make_mesh())
  lowered = train_step.lower(state, batch)
  # Backend passes change the count a little: 7% here, 0.4% for recap at batch 256.
  counted = timing.step_flops(steps.make_step_fn(config, networks), state, batch)
  assert counted > 1e9  # G and D forward and backward over 64 images.
  np.testing.assert_allclose(counted, timing._flops(lowered.compile()), rtol=0.1)


def test_matmul_peak_is_a_positive_rate():
  assert timing.matmul_peak_gflops(size=256, repeats=3) > 0


def test_per_network_times_g_and_both_d_passes(capsys):
  load_benchmark('per_network').main(['--framework', 'jax', '--config',
                                      'configs/recap.py:smoke', '--batch_size', '4',
                                      '--repeats', '1'])
  report = json.loads(capsys.readouterr().out)
  assert report['framework'] == 'jax' and report['batch_size'] == 4
  assert set(report['median_ms']) == {'G', 'D fake (params and input)', 'D real (params)'}
  assert all(ms > 0 for ms in report['median_ms'].values())


@pytest.mark.parametrize('config_name', ['baseline', 'recap'])
def test_per_layer_lists_the_convolutions_the_models_run(config_name):
  """Names, input shapes and kernels of per_layer's ops are those G and D apply in a step."""
  import flax.linen as nn
  per_layer = load_benchmark('per_layer')
  config = load_config(f'configs/{config_name}.py')
  networks = Networks(config)
  seen = {}

  def record(next_fun, args, kwargs, context):
    name = context.module.name or ''
    if context.method_name == '__call__' and name.startswith(('ConvTranspose_', 'Conv_')):
      prefix = 'G.' if name.startswith('ConvTranspose_') else 'D.'
      seen[prefix + name] = args[0].shape[1:]
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    g_vars, d_vars = jax.eval_shape(lambda: networks.init(jax.random.PRNGKey(0)))
  layers = per_layer.conv_layers(config)
  assert {layer['name']: tuple(layer['input']) for layer in layers} == seen
  for layer in layers:
    params = (g_vars if layer['name'].startswith('G.') else d_vars)['params']
    kernel = params[layer['name'].split('.')[1]]['kernel']
    assert kernel.shape[2:] == (layer['input'][2], layer['features'])


def test_per_layer_times_every_op_of_every_layer(capsys):
  per_layer = load_benchmark('per_layer')
  per_layer.main(['--framework', 'jax', '--config', 'configs/recap.py:smoke', '--batch_size', '2',
                  '--repeats', '1'])
  report = json.loads(capsys.readouterr().out)
  config = load_config('configs/recap.py:smoke')
  names = [layer['name'] for layer in per_layer.conv_layers(config)]
  assert list(report['results']['jax']) == names
  for ops in report['results']['jax'].values():
    assert set(ops) == set(per_layer.OPS)
    assert all(t['wall_ms'] > 0 and t['cpu_ms'] >= 0 for t in ops.values())
  per_step = per_layer.step_cpu_ms(config, report['results']['jax'])
  d1 = report['results']['jax']['D.Conv_1']
  assert per_step['D.Conv_1'] == pytest.approx(
      2 * d1['fwd']['cpu_ms'] + 3 * d1['dx']['cpu_ms'] + 2 * d1['dw']['cpu_ms'])
