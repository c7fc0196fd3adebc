"""KID: the unbiased squared MMD between Inception features (Binkowski et al. 2018)."""

import numpy as np

from gan.metrics import registry


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray,
                              num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """(mean, std) over subsets of the unbiased MMD^2 with the kernel (x.y / d + 1)^3.

  Unbiased: a set against itself (or another draw of the same distribution) scores ~0,
  possibly slightly negative, whatever the sample size.
  """
  rng = np.random.default_rng(seed)
  n = min(len(features1), len(features2), subset_size)
  dim = features1.shape[1]
  kernel = lambda a, b: (a @ b.T / dim + 1) ** 3
  scores = []
  for _ in range(num_subsets):
    x = np.asarray(features1[rng.choice(len(features1), n, replace=False)], np.float64)
    y = np.asarray(features2[rng.choice(len(features2), n, replace=False)], np.float64)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    scores.append(within - 2 * kxy.mean())
  return float(np.mean(scores)), float(np.std(scores))


@registry.register('kid')
def make(context: registry.Context) -> registry.Metric:
  """KID of the samples against the reference split's first KID features."""
  _, _, reference_features = context.reference_stats

  def kid_of(samples: registry.Samples) -> dict:
    kid, kid_std = kernel_inception_distance(samples.features, reference_features)
    return {'eval/kid': kid, 'eval/kid_std': kid_std}

  return kid_of
