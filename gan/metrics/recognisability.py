"""Recognisability: how often the project's CIFAR-10 classifier is sure what a sample shows.

The course project's first criterion is images whose object class a person can tell; the
classifier (`gan.metrics.classifier`) stands in for the person. Reported: the share of
samples given one class with probability >= 0.9, the predicted-class histogram and its
entropy (a G that draws only horses can be very recognisable).
"""

import numpy as np

from gan.metrics import registry


def recognisability(probs: np.ndarray, threshold: float = 0.9) -> dict:
  """Share of confidently classified images, class histogram and its entropy.

  `entropy` is in nats of the predicted-class histogram; `log(10)` = 2.303 means every
  class is drawn equally often, 0 that all samples fall in one class.
  """
  probs = np.asarray(probs, np.float64)
  counts = np.bincount(probs.argmax(-1), minlength=probs.shape[-1])
  share = counts / counts.sum()
  nonzero = share[share > 0]
  return {'recognisable': float((probs.max(-1) >= threshold).mean()),
          'class_entropy': float(-(nonzero * np.log(nonzero)).sum()) + 0.0,  # Not -0.0.
          'class_histogram': counts.tolist()}


@registry.register('recognisability')
def make(context: registry.Context) -> registry.Metric:
  context.recogniser  # Loads the shipped weights now, not at the first evaluation.

  def recognisability_of(samples: registry.Samples) -> dict:
    scores = recognisability(samples.class_probabilities)
    return {f'eval/{key}': value for key, value in scores.items()}

  return recognisability_of
