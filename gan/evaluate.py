r"""Sample quality of a run's generator, appended to its metrics file.

  python -m gan.evaluate --workdir runs/recap [--num_samples 10000] [--reference train]
                         [--metrics fid,kid,recognisability] [--batch_size 50]
                         [--inception_logits PATH] [--step N] [--g_statistics standing]
                         [--live_g]

Samples G (`gan.sampling`: its EMA when the run keeps one, BatchNorm set as the run's
`eval.g_statistics` or `--g_statistics` says, noise from the run's own 'eval' random
stream, labels balanced over the classes for a conditional model) at the latest
checkpoint (or the kept one of `--step`, for a curve of quality over
training), quantised to uint8, and measures each metric named
(`gan.metrics`; default: the run's `config.eval.metrics`):

  - 'fid', 'kid': against the reference split, from the reference FID Inception's features;
    the split's statistics are cached under $GAN_CACHE_DIR keyed by its checksum;
  - 'recognisability': the share of samples the project's CIFAR-10 classifier assigns a
    class with probability >= 0.9, the class histogram and its entropy;
  - 'per_class' (conditional runs): the classifier's accuracy on samples asked for each
    class, the confusion matrix (also drawn to `<workdir>/confusion.png`) and intra-FID;
  - 'inception_score': needs the 1008-way logits layer (`--inception_logits`,
    `config.eval.inception_logits` or $GAN_INCEPTION_LOGITS); given a file, it is added.

The record {"step", "epoch", "kimg", "g_steps", "d_steps", "eval/...", "eval/num_samples",
"eval/reference", "eval/g_statistics"} is appended to `<workdir>/metrics.jsonl`. The
training loop calls the
same `Evaluator` on its `config.eval.every` schedule.
"""

import argparse
import json
from pathlib import Path

import jax
import ml_collections
import numpy as np

from gan import checkpoint, config_files, data, metrics, parallel, sampling, schedule, streams
from gan import visualize
from gan.networks import Networks
from gan.sampling import Sampling
from gan.state import GANState, create_state


class Evaluator:
  """The metrics of `config.eval` (or those named) of G's samples."""

  def __init__(self, config: ml_collections.ConfigDict, networks: Networks,
               metric_names=None, reference_split: str = '', batch_size: int = 0,
               inception_logits: str = '', sampling: Sampling | None = None):
    self.context = metrics.Context(config.data, reference_split or config.eval.reference_split,
                                   batch_size or config.eval.batch_size,
                                   inception_logits or config.eval.inception_logits)
    self._metrics = metrics.make_metrics(
        list(config.eval.metrics if metric_names is None else metric_names), self.context)
    self._networks = networks
    self._key = streams.run_keys(config.seed)['eval']
    self.sampling = sampling or Sampling(config, networks)
    self._sample = self.sampling.sharded_sampler()

  def samples(self, g_variables, num_samples: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 [N, H, W, C], labels or None) of G with `g_variables` (as
    `Sampling.variables` gives them): G's output quantised as the reference
    pipeline does. The noise is drawn for all N at once, so the samples do not depend on
    the batch size."""
    z = np.asarray(self._networks.latents(self._key, num_samples))
    labels = self._networks.balanced_labels(num_samples)
    labels = None if labels is None else np.asarray(labels)
    return generate_uint8(self._sample, g_variables, z, labels, self.context.batch_size), labels

  def __call__(self, g_variables, num_samples: int) -> dict:
    images, labels = self.samples(g_variables, num_samples)
    samples = metrics.Samples(images, labels, self.context)
    record = {}
    for metric in self._metrics:
      record.update(metric(samples))
    return {**record, 'eval/num_samples': num_samples, 'eval/reference': self.context.reference,
            'eval/g_statistics': self.sampling.mode}


def generate_uint8(sample: parallel.OverMesh, g_variables, z: np.ndarray,
                   labels: np.ndarray | None, batch: int) -> np.ndarray:
  """uint8 [N, H, W, C] images of G (`sample`: `Sampling.sharded_sampler()`) for latents
  `z` [N, D] (and `labels` [N]), `batch` at a time (rounded up to split over the devices):
  one program for every batch, the last padded."""
  batch = sample.batch_size(batch)
  out = []
  for start in range(0, len(z), batch):
    z_batch = z[start:start + batch]
    pad = batch - len(z_batch)
    z_batch = np.concatenate([z_batch, np.zeros((pad, z.shape[1]), z.dtype)])
    label_batch = None if labels is None else np.concatenate(
        [labels[start:start + batch], np.zeros(pad, labels.dtype)])
    images = sample(g_variables, z_batch, label_batch)
    out.append(visualize.to_uint8(images[:batch - pad]))
  return np.concatenate(out)


def load_run(workdir: Path, step: int | None = None
             ) -> tuple[ml_collections.ConfigDict, Networks, GANState]:
  """(config, networks, state) of the run in `workdir`: its latest checkpoint, or that of
  `step`."""
  config = config_files.read_run_config(workdir)
  networks = Networks(config)
  template = jax.jit(lambda: create_state(config, networks),
                     out_shardings=parallel.replicated(parallel.make_mesh()))()
  checkpointer = checkpoint.Checkpointer.of_run(config, workdir)
  try:
    if step is None:
      state = checkpointer.restore_latest(template, schedule.images_per_step(config))
    else:
      state = checkpointer.restore(step, template, schedule.images_per_step(config))
  finally:
    checkpointer.close()
  if state is None:
    raise FileNotFoundError(f'{checkpointer.directory} holds no checkpoint.')
  return config, networks, state


def evaluate_run(workdir: Path, num_samples: int, reference_split: str = '', batch_size: int = 0,
                 inception_logits: str = '', metric_names=None, step: int | None = None,
                 g_statistics: str = '', live_g: bool = False) -> dict:
  """Evaluates the latest checkpoint of `workdir` (or that of `step`); appends and returns
  the record. The reference split, Inception batch and G's sampling statistics default to
  the run's `config.eval`. `live_g` samples the live G of a run that keeps an EMA (what the
  EMA buys, from the same training); its record says `"eval/g_weights": "live"`, and
  gan.compare keeps it out of the run's own numbers."""
  config, networks, state = load_run(workdir, step)
  if live_g and state.g_ema is None:
    raise ValueError(f'{workdir} keeps no EMA of G: its evaluation samples the live G '
                     f'already; drop --live_g.')
  config.eval.g_statistics = g_statistics or config.eval.g_statistics
  names = list(config.eval.metrics if metric_names is None else metric_names)
  if inception_logits and 'inception_score' not in names:
    names.append('inception_score')
  evaluator = Evaluator(config, networks, names, reference_split, batch_size, inception_logits,
                        sampling=Sampling(config, networks, ema=not live_g))
  step = int(state.step)
  steps_per_epoch = _steps_per_epoch(workdir)
  record = {'step': step, 'epoch': step / steps_per_epoch if steps_per_epoch else None,
            'kimg': float(state.kimg), 'g_steps': int(state.g.step),
            'd_steps': int(state.d.step),
            **evaluator(evaluator.sampling.variables(state), num_samples),
            **({'eval/g_weights': 'live'} if live_g else {})}
  with open(workdir / 'metrics.jsonl', 'a') as f:
    f.write(json.dumps(record) + '\n')
  if 'eval/confusion' in record:
    visualize.plot_confusion(
        record['eval/confusion'], data.dataset_spec(config.data).class_names,
        workdir / 'confusion.png',
        f'step {step}, {num_samples} samples: accuracy {record["eval/class_accuracy"]:.1%}')
  return record


def _steps_per_epoch(workdir: Path) -> float | None:
  """From the run's own log: step / epoch of its last training record."""
  for record in reversed(visualize.read_metrics(workdir / 'metrics.jsonl')):
    if 'G/loss' in record and record['epoch']:
      return record['step'] / record['epoch']
  return None


def format_record(record: dict) -> str:
  """One line of an evaluation record's numbers (those it holds)."""
  parts = []
  if 'eval/fid' in record:
    parts.append(f'FID {record["eval/fid"]:.2f}')
  if 'eval/kid' in record:
    parts.append(f'KID {record["eval/kid"]:.4f} +- {record["eval/kid_std"]:.4f}')
  if 'eval/recognisable' in record:
    parts.append(f'recognisable {record["eval/recognisable"]:.1%}  class entropy '
                 f'{record["eval/class_entropy"]:.2f}')
  if 'eval/class_accuracy' in record:
    parts.append(f'class accuracy {record["eval/class_accuracy"]:.1%}  intra-FID '
                 f'{record["eval/intra_fid"]:.1f}')
  if 'eval/is' in record:
    parts.append(f'IS {record["eval/is"]:.2f} +- {record["eval/is_std"]:.2f}')
  return '  '.join(parts)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description='Sample quality of a run against CIFAR-10.')
  parser.add_argument('--workdir', type=Path, required=True)
  parser.add_argument('--num_samples', '--num-samples', type=int, default=10_000)
  parser.add_argument('--reference', choices=data.SPLITS, default='',
                      help="split to compare with (default: the run's eval.reference_split)")
  parser.add_argument('--metrics', default='',
                      help=f'comma-separated names from {sorted(metrics.METRICS)} '
                           f"(default: the run's config.eval.metrics)")
  parser.add_argument('--batch_size', '--batch-size', type=int, default=0,
                      help="Inception batch (default: the run's eval.batch_size)")
  parser.add_argument('--inception_logits', '--inception-logits', default='',
                      help=f'weights with the 1008-way logits layer, for the Inception Score '
                           f'(default ${metrics.INCEPTION_LOGITS_ENV}; none: no IS)')
  parser.add_argument('--step', type=int, default=None,
                      help='a kept checkpoint to evaluate (default: the latest)')
  parser.add_argument('--g_statistics', '--g-statistics', choices=sampling.STATISTICS, default='',
                      help="how G's BatchNorm is set when sampling (default: the run's "
                           "eval.g_statistics; gan/sampling.py)")
  parser.add_argument('--live_g', '--live-g', action='store_true',
                      help='sample the live G of a run that keeps an EMA of it, not the EMA '
                           '(what the EMA buys; gan.compare keeps the record apart)')
  args = parser.parse_args(argv)
  if args.num_samples < 2:
    parser.error(f'--num_samples={args.num_samples}: need at least 2 samples.')
  names = [name.strip() for name in args.metrics.split(',') if name.strip()] or None
  try:
    record = evaluate_run(args.workdir, args.num_samples, args.reference, args.batch_size,
                          args.inception_logits, names, args.step, args.g_statistics,
                          args.live_g)
  except ValueError as error:
    parser.error(str(error))
  print(f'step {record["step"]}: {format_record(record)}  ({args.num_samples} samples vs '
        f'{record["eval/reference"]})')


if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()
  main()
