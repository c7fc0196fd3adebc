r"""Sample quality of a run's generator, appended to its metrics file.

  python -m gan.evaluate --workdir runs/recap [--num_samples 10000] [--reference train]
                         [--batch_size 50] [--inception_logits PATH]

Samples G (inference mode, its EMA parameters when the run keeps them, noise from the
run's own 'eval' random stream) at the latest checkpoint, quantised to uint8, and measures:

  - FID and KID against the reference split, from the reference FID Inception's features
    (gan.metrics.inception); the split's mean, covariance and KID features are cached under
    $GAN_CACHE_DIR keyed by the split's checksum;
  - recognisability (gan.classifier): the share of samples the project's CIFAR-10
    classifier assigns a class with probability >= 0.9, the class histogram and its entropy;
  - the Inception Score, when a weights file with the 1008-way logits layer is given
    (`--inception_logits`, `config.eval.inception_logits` or $GAN_INCEPTION_LOGITS; see
    gan.metrics.inception_score).

The result is appended to `<workdir>/metrics.jsonl` as {"step", "epoch", "kimg",
"eval/fid", "eval/kid", "eval/kid_std", "eval/recognisable", "eval/class_entropy",
"eval/class_histogram", ["eval/is", "eval/is_std",] "eval/num_samples", "eval/reference"}.
The training loop calls the same `Evaluator` every `config.eval.every_epochs` epochs.
"""

import argparse
import json
import os
from pathlib import Path

import jax
import ml_collections
import numpy as np

from gan import classifier, data, models, visualize
from gan.metrics import fid
from gan.state import GANState, rng_streams, sampling_variables


INCEPTION_LOGITS_ENV = 'GAN_INCEPTION_LOGITS'


class Evaluator:
  """FID/KID, recognisability and (optionally) IS of G's samples; the reference cached."""

  def __init__(self, config: ml_collections.ConfigDict, generator, reference_split: str,
               batch_size: int = 25, inception_logits: str = ''):
    from gan.metrics.inception import FeatureExtractor  # Loads (or converts) the weights.
    self._extractor = FeatureExtractor(batch_size)
    self._recogniser = classifier.Recogniser()
    inception_logits = inception_logits or os.environ.get(INCEPTION_LOGITS_ENV, '')
    self._inception_score = None
    if inception_logits:
      from gan.metrics.inception_score import InceptionScorer
      self._inception_score = InceptionScorer(inception_logits, self._extractor)
    self._generator = generator
    self._latent_dim = config.model.latent_dim
    self._key = rng_streams(config.seed)['eval']
    self.reference = f'cifar10:{reference_split}'
    data_config = config.data.copy_and_resolve_references()
    data_config.split, data_config.num_examples = reference_split, 0
    images, _ = data.load(data_config)
    self._mu, self._sigma, self._kid_features = fid.cached_stats(self.reference, images,
                                                                 self._extractor)
    self._sample = models.inference_generator(generator)

  def samples(self, g_variables, num_samples: int) -> np.ndarray:
    """uint8 [N, 32, 32, 3]: G's output quantised as the reference pipeline does.

    The noise is drawn for all N at once, so the samples do not depend on the batch size.
    """
    batch = self._extractor.batch_size
    padded = -(-num_samples // batch) * batch
    noise = np.asarray(jax.random.normal(self._key, (num_samples, self._latent_dim)))
    noise = np.concatenate([noise, np.zeros((padded - num_samples, self._latent_dim), noise.dtype)])
    out = [visualize.to_uint8(np.asarray(self._sample(g_variables, noise[start:start + batch])))
           for start in range(0, padded, batch)]
    return np.concatenate(out)[:num_samples]

  def __call__(self, g_variables, num_samples: int) -> dict:
    images = self.samples(g_variables, num_samples)
    features = self._extractor(images)
    kid, kid_std = fid.kernel_inception_distance(features, self._kid_features)
    record = {'eval/fid': fid.frechet_distance(*fid.feature_stats(features), self._mu, self._sigma),
              'eval/kid': kid, 'eval/kid_std': kid_std}
    recognised = classifier.recognisability(self._recogniser.probabilities(images))
    record.update({f'eval/{key}': value for key, value in recognised.items()})
    if self._inception_score is not None:
      record['eval/is'], record['eval/is_std'] = self._inception_score(features=features)
    return {**record, 'eval/num_samples': num_samples, 'eval/reference': self.reference}


def evaluate_run(workdir: Path, num_samples: int, reference_split: str,
                 batch_size: int = 25, inception_logits: str = '') -> dict:
  """Evaluates the latest checkpoint of `workdir`; appends and returns the record."""
  from gan import checkpoint, steps
  from gan.loop import make_mesh
  from gan.state import create_state
  config = ml_collections.ConfigDict(json.loads((workdir / 'config.json').read_text()))
  if 'g_ema_decay' not in config.train:  # A run from before G's EMA existed.
    config.train.g_ema_decay = 0.0
  generator, discriminator = models.build_models(config)
  template = jax.jit(lambda: create_state(config, generator, discriminator),
                     out_shardings=steps.replicated(make_mesh()))()
  checkpointer = checkpoint.Checkpointer(workdir / 'checkpoints', config.checkpoint.max_to_keep)
  state: GANState | None = checkpointer.restore_latest(template)
  checkpointer.close()
  if state is None:
    raise FileNotFoundError(f'{workdir}/checkpoints holds no checkpoint to evaluate.')
  step = int(state.step)
  steps_per_epoch = _steps_per_epoch(workdir)
  evaluator = Evaluator(config, generator, reference_split, batch_size, inception_logits)
  record = {'step': step, 'epoch': step / steps_per_epoch if steps_per_epoch else None,
            'kimg': step * config.train.batch_size / 1000,
            **evaluator(sampling_variables(state), num_samples)}
  with open(workdir / 'metrics.jsonl', 'a') as f:
    f.write(json.dumps(record) + '\n')
  return record


def _steps_per_epoch(workdir: Path) -> float | None:
  """From the run's own log: step / epoch of its last training record."""
  for record in reversed(visualize.read_metrics(workdir / 'metrics.jsonl')):
    if 'G/loss' in record and record['epoch']:
      return record['step'] / record['epoch']
  return None


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description='FID/KID of a run against CIFAR-10.')
  parser.add_argument('--workdir', type=Path, required=True)
  parser.add_argument('--num_samples', '--num-samples', type=int, default=10_000)
  parser.add_argument('--reference', choices=('train', 'test'), default='train')
  parser.add_argument('--batch_size', '--batch-size', type=int, default=25, help='Inception batch')
  parser.add_argument('--inception_logits', '--inception-logits', default='',
                      help=f'weights with the 1008-way logits layer, for the Inception Score '
                           f'(default ${INCEPTION_LOGITS_ENV}; none: no IS)')
  args = parser.parse_args(argv)
  record = evaluate_run(args.workdir, args.num_samples, args.reference, args.batch_size,
                        args.inception_logits)
  print(f'step {record["step"]}: {format_record(record)}  ({args.num_samples} samples vs '
        f'{record["eval/reference"]})')


def format_record(record: dict) -> str:
  """One line of an evaluation record's numbers."""
  text = (f'FID {record["eval/fid"]:.2f}  KID {record["eval/kid"]:.4f} +- '
          f'{record["eval/kid_std"]:.4f}  recognisable {record["eval/recognisable"]:.1%}  '
          f'class entropy {record["eval/class_entropy"]:.2f}')
  if 'eval/is' in record:
    text += f'  IS {record["eval/is"]:.2f} +- {record["eval/is_std"]:.2f}'
  return text


if __name__ == '__main__':
  main()
