r"""How G's BatchNorm setting changes its samples, and what standing statistics cost.

  python benchmarks/sampling.py --workdir RUN [--step N]     # a run's checkpoint
  python benchmarks/sampling.py --config configs/recap.py    # G at initialisation

For each `eval.g_statistics` mode it prints the diversity of the run's fixed-noise grid
(`gan.sampling.diversity`: the mean per-pixel RMS distance between two samples; 0 for
copies of one picture) and the seconds `Sampling.variables` takes (the standing
statistics' train-mode passes, once per grid and once per evaluation), compiled and
warm, the median of `--repeats`.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan import cpu_defaults  # noqa: E402

cpu_defaults.apply_xla_flags()

from gan import evaluate, parallel, sampling, streams  # noqa: E402
from gan.config_files import load_config  # noqa: E402
from gan.networks import Networks  # noqa: E402
from gan.state import create_state  # noqa: E402


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', type=Path, default=None)
  parser.add_argument('--step', type=int, default=None)
  parser.add_argument('--config', default='configs/recap.py')
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args(argv)
  if args.workdir:
    config, networks, state = evaluate.load_run(args.workdir, args.step)
    where = f'{args.workdir} step {int(state.step)}'
  else:
    config = load_config(args.config)
    networks = Networks(config)
    state = jax.device_put(create_state(config, networks),
                           parallel.replicated(parallel.make_mesh()))
    where = f'{args.config} at initialisation'
  size = config.eval.grid_size ** 2
  z = networks.latents(streams.run_keys(config.seed)['samples'], size)
  labels = networks.balanced_labels(size)
  standing_batch = config.eval.standing_batch_size or config.train.batch_size
  print(f'{where} ({jax.devices()[0].platform}): grid of {size}, standing statistics of '
        f'{config.eval.standing_batches} x {standing_batch}')
  for mode in sampling.STATISTICS:
    config.eval.g_statistics = mode
    sampler = sampling.Sampling(config, networks)
    jax.block_until_ready(sampler.variables(state))  # Compiled.
    seconds = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      variables = jax.block_until_ready(sampler.variables(state))
      seconds.append(time.perf_counter() - start)
    images = np.asarray(sampler.sampler()(variables, z, labels))
    print(f'  {mode:9s} diversity {sampling.diversity(images):.3f}   variables '
          f'{np.median(seconds):.2f} s')


if __name__ == '__main__':
  main()
