"""Timing of the train step and of the FID Inception on whatever device is present.

The measurements `python -m gan.bench` prints: steady-state img/s over timed windows,
compile time, FLOPs by XLA's cost analysis, the device's matmul peak, peak memory.
Batches are random uint8 images already on the device: this times the step, not the
input pipeline.
"""

import math
import resource
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan import data, parallel, schedule, steps
from gan.networks import Networks
from gan.state import create_state
from gan.validation import validate_config


def _peak_memory_mb() -> float:
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


def _flops(stage) -> float:
  """FLOPs by XLA's cost analysis of a `jax.stages.Lowered` or `Compiled` module (NaN
  where the backend gives none)."""
  cost = stage.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', float('nan'))) if cost else float('nan')


def step_flops(step_fn: Callable, *args) -> float:
  """FLOPs of `step_fn(*args)` by XLA's cost analysis of the step as lowered for the host
  CPU, traced as for the default device (the layers take their GPU paths on a GPU host).

  The GPU's own counts fail both ways: its lowered module has no cost analysis (None
  with jax 0.11.2 on an H200), and its compiled module's leaves out the convolutions
  that became cuDNN calls (it counted 1.3 of recap's 187 GFLOP a step). On the CPU the
  lowered and compiled counts differ by XLA's rewrites only: 0.4% for recap at batch 256.
  """
  try:
    cpu = jax.sharding.SingleDeviceSharding(jax.devices('cpu')[0])
  except RuntimeError:  # JAX_PLATFORMS left the CPU out.
    return float('nan')
  on_cpu = lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x), sharding=cpu)
  return _flops(jax.jit(step_fn).lower(*jax.tree.map(on_cpu, args)))


def random_batch(config, num: int, seed: int = 0) -> dict:
  """A batch of `num` random uint8 images and labels of `config`'s data set."""
  spec = data.dataset_spec(config.data)
  rng = np.random.default_rng(seed)
  return {'image': rng.integers(0, 256, (num, *spec.image_shape), dtype=np.uint8),
          'label': rng.integers(0, spec.num_classes, num, dtype=np.int32)}


def bench_step(config, batch_size: int, num_steps: int, num_windows: int, warmup: int,
               reference: Callable[[], list[float]] | None = None, rounds: int = 1) -> dict:
  """Times `config`'s train step at `batch_size`; returns one result row.

  With a `reference` (a callable timing another implementation's windows, in img/s),
  `rounds` rounds of `num_windows` windows each, alternating which goes first; the row
  gets the reference's median, min and max too, and each round's ratio of medians.
  """
  config = config.copy_and_resolve_references()
  config.train.batch_size = batch_size
  mesh = parallel.make_mesh()
  validate_config(config, mesh.size)
  networks = Networks(config)
  state = jax.jit(lambda: create_state(config, networks),
                  out_shardings=parallel.replicated(mesh))()
  train_step = steps.make_train_step(config, networks, mesh)
  per_step = schedule.images_per_step(config)  # Real images a step: img/s counts these.
  batch = jax.device_put(random_batch(config, per_step),
                         parallel.batch_sharding(mesh))

  start = time.perf_counter()
  lowered = train_step.lower(state, batch)
  lowered.compile()  # Compilation alone, without a first run of the step.
  compile_s = time.perf_counter() - start
  flops = _flops(lowered)
  if math.isnan(flops):  # A GPU's lowered module: count the step lowered for the host.
    flops = step_flops(steps.make_step_fn(config, networks), state, batch)

  for _ in range(warmup):
    state, metrics = train_step(state, batch)
  jax.block_until_ready(state)

  cpu_seconds = []  # The process's CPU time (all threads) of each window.

  def time_windows() -> list[float]:
    nonlocal state
    rates = []
    for _ in range(num_windows):
      start, cpu_start = time.perf_counter(), time.process_time()
      for _ in range(num_steps):
        state, metrics = train_step(state, batch)
      jax.block_until_ready((state, metrics))
      rates.append(num_steps * per_step / (time.perf_counter() - start))
      cpu_seconds.append(time.process_time() - cpu_start)
    return rates

  rates, reference_rates, round_ratios = [], [], []
  for round_index in range(rounds if reference else 1):
    if reference and round_index % 2:
      theirs = reference()
      ours = time_windows()
    else:
      ours = time_windows()
      theirs = reference() if reference else []
    rates += ours
    reference_rates += theirs
    if reference:
      round_ratios.append(statistics.median(ours) / statistics.median(theirs))
  median = statistics.median(rates)
  row = {
      'batch_size': batch_size,
      'img_per_sec': median, 'img_per_sec_min': min(rates), 'img_per_sec_max': max(rates),
      'ms_per_step': 1000 * per_step / median,
      'compile_s': compile_s,
      'gflop_per_step': flops / 1e9,
      'gflop_per_sec': flops / 1e9 * median / per_step,
      'peak_memory_mb': _peak_memory_mb(),
      # Host CPU per step: on a CPU, the cores' work (the step may keep them all busy).
      'cpu_ms_per_step': 1000 * statistics.median(cpu_seconds) / num_steps,
  }
  if reference:
    row['torch_img_per_sec'] = statistics.median(reference_rates)
    row['torch_img_per_sec_min'] = min(reference_rates)
    row['torch_img_per_sec_max'] = max(reference_rates)
    row['jax_over_torch'] = median / row['torch_img_per_sec']
    row['jax_over_torch_rounds'] = round_ratios
  return row


def bench_inception(batch_size: int, num_windows: int) -> dict:
  """Times the FID feature extractor on random uint8 32x32 images; one result row."""
  from gan.metrics.inception import FeatureExtractor
  extractor = FeatureExtractor(batch_size)
  images = np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8)
  start = time.perf_counter()
  extractor(images)  # Compiles, then runs once.
  first_s = time.perf_counter() - start
  rates = []
  for _ in range(num_windows):
    start = time.perf_counter()
    extractor(images)  # Returns a host array: the work is done when it returns.
    rates.append(batch_size / (time.perf_counter() - start))
  median = statistics.median(rates)
  return {'batch_size': batch_size, 'img_per_sec': median, 'img_per_sec_min': min(rates),
          'img_per_sec_max': max(rates), 'compile_and_first_batch_s': first_s,
          'seconds_per_10k': 10_000 / median, 'peak_memory_mb': _peak_memory_mb()}


def matmul_peak_gflops(size: int = 3072, repeats: int = 5, dtype: str = 'float32') -> float:
  """The device's matmul rate in `dtype` (median of `repeats`): the yardstick for the step's
  fraction of peak (a bfloat16 step against bfloat16 matmuls, whose rate on a GPU or TPU
  is many times float32's)."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.dtype(dtype))
  matmul = jax.jit(lambda x: x @ x)  # Default precision, as the train step uses.
  jax.block_until_ready(matmul(a))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a))
    times.append(time.perf_counter() - start)
  return 2 * size ** 3 / statistics.median(times) / 1e9
