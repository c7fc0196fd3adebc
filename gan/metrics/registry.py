"""The registry of metrics and what they share (`gan.metrics` re-exports it)."""

import functools
import os
from collections.abc import Callable

import ml_collections
import numpy as np

INCEPTION_LOGITS_ENV = 'GAN_INCEPTION_LOGITS'


class Context:
  """What the metrics of one evaluator share: the reference split and the FID Inception."""

  def __init__(self, data_config: ml_collections.ConfigDict, reference_split: str,
               batch_size: int = 25, inception_logits: str = ''):
    self.data_config = data_config.copy_and_resolve_references()
    self.data_config.split, self.data_config.num_examples = reference_split, 0
    self.reference = f'{self.data_config.dataset}:{reference_split}'
    self.batch_size = batch_size
    # The 1008-way logits layer of the reference Inception, for the Inception Score.
    self.inception_logits = inception_logits or os.environ.get(INCEPTION_LOGITS_ENV, '')

  @functools.cached_property
  def extractor(self):
    """The reference FID Inception's pool3 features of uint8 images."""
    from gan.metrics.inception import FeatureExtractor  # Loads (or converts) the weights.
    return FeatureExtractor(self.batch_size)

  @functools.cached_property
  def reference_data(self) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int32 labels) of the reference split."""
    from gan import data
    return data.load(self.data_config)

  @functools.cached_property
  def reference_stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, covariance, KID features) of the reference split, cached on disk; the KID
    features are those of its first `fid.KID_FEATURES` images."""
    from gan.metrics import fid
    return fid.cached_stats(self.reference, self.reference_data[0], self.extractor)

  @functools.cached_property
  def recogniser(self):
    """The project's CIFAR-10 classifier (`gan.metrics.classifier`, shipped weights)."""
    from gan.metrics.classifier import Recogniser
    return Recogniser()


class Samples:
  """Generated images uint8 [N, H, W, C] (and the labels asked for, or None)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray | None, context: Context):
    self.images, self.labels, self._context = images, labels, context

  @functools.cached_property
  def features(self) -> np.ndarray:
    """Inception pool3 features [N, 2048], computed once for every metric that needs them."""
    return self._context.extractor(self.images)

  @functools.cached_property
  def class_probabilities(self) -> np.ndarray:
    """The project's classifier's class probabilities [N, classes], computed once."""
    return self._context.recogniser.probabilities(self.images)


Metric = Callable[[Samples], dict]
METRICS: dict[str, Callable[[Context], Metric]] = {}


def register(name: str):
  def add(make: Callable[[Context], Metric]) -> Callable[[Context], Metric]:
    if make.__module__ == '__main__':
      # `python -m gan.metrics.fid` runs the module a second time as __main__, after the
      # package's import registered its metric; that copy is the one kept.
      return make
    if name in METRICS:
      raise ValueError(f'Metric {name!r} is registered twice.')
    METRICS[name] = make
    return make

  return add


def make_metrics(names, context: Context) -> list[Metric]:
  unknown = [name for name in names if name not in METRICS]
  if unknown:
    raise ValueError(f'Unknown metrics {unknown}; use names from {sorted(METRICS)}.')
  return [METRICS[name](context) for name in names]

