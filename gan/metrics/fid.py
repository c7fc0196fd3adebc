r"""FID and KID between two image sets, on the reference FID Inception's pool3 features.

  python -m gan.metrics.fid cifar10:train cifar10:test
  python -m gan.metrics.fid samples.npz cifar10:test --num_samples 10000

A set is a dataset split (`cifar10:train`, `cifar10:test`, read as `gan.data` reads it:
$GAN_CIFAR10_DIR or TFDS) or an `.npz` whose array `images` is uint8 [N, 32, 32, 3].
Features are float32; means and covariances float64. The matrix square root in FID is
taken through symmetric eigendecompositions, so rank-deficient covariances (fewer samples
than 2048 features) give a real, finite result with no imaginary part to discard.
"""

import argparse
import hashlib
import shutil
from pathlib import Path

import jax
import numpy as np
import tqdm

from gan import atomic, data, distributed
from gan.metrics import registry
from gan.metrics import weights


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], covariance [D, D]) in float64, the covariance unbiased (N - 1)."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
  eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

  tr((S1 S2)^(1/2)) = tr((A S2 A)^(1/2)) with A = S1^(1/2): A S2 A is symmetric PSD, so
  its eigenvalues are real and >= 0 (up to rounding, clipped).
  """
  root1 = _sqrt_psd(sigma1)
  middle = root1 @ sigma2 @ root1
  eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
  trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
  diff = np.asarray(mu1) - np.asarray(mu2)
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def load_images(spec: str, num_samples: int = 0) -> tuple[np.ndarray, str]:
  """(uint8 [N, 32, 32, 3], a checksum of them) for `cifar10:<split>` or an .npz path."""
  if spec.startswith('cifar10:'):
    images, _ = data.load_split(spec.split(':', 1)[1])  # $GAN_CIFAR10_DIR, else TFDS.
  else:
    path = Path(spec)
    if not path.is_file():
      raise FileNotFoundError(f'{spec}: neither a cifar10:<split> nor an existing .npz file.')
    with np.load(path, allow_pickle=False) as archive:
      if 'images' not in archive:
        raise ValueError(f'{path}: expected an array named images, found {archive.files}.')
      images = archive['images']
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f'{spec}: expected uint8 images [N, H, W, 3], got {images.dtype} '
                     f'{images.shape}.')
  if num_samples:
    images = images[:num_samples]
  return images, hashlib.sha256(images.tobytes()).hexdigest()[:16]


# KID compares subsets of up to this many features; the cache keeps as many of each set.
KID_FEATURES = 10_000


def cached_stats(name: str, images: np.ndarray, extractor) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
  """(mu, sigma, first KID_FEATURES features) of `images`, cached under $GAN_CACHE_DIR as
  fid-stats-<name>-<sha256 of the images>.npz, so a changed dataset is never served stale.

  In a multi-host run the extractor is a computation over every host's devices, so all
  hosts take one path: the cache is read only when every host has it, else all compute
  the features together and process 0 alone writes the file."""
  checksum = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
  safe_name = ''.join(c if c.isalnum() or c in '-_' else '-' for c in name)
  path = weights.cache_dir() / f'fid-stats-{safe_name}-{checksum}.npz'
  if not distributed.any_process([not path.exists()])[0]:
    with np.load(path) as cached:
      return cached['mu'], cached['sigma'], cached['kid_features']
  main = distributed.is_main()
  if main:
    print(f'Computing FID statistics of {name} ({len(images)} images) once into {path} ...',
          flush=True)
  if jax.process_count() == 1:
    features = _resumable_features(images, extractor, path.with_suffix('.parts'))
  else:  # Chunks a host kept from an earlier try would take it off the others' path.
    features = np.concatenate([extractor(images[start:start + CHUNK])
                               for start in range(0, len(images), CHUNK)])
  mu, sigma = feature_stats(features)
  if main:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp:
      np.savez(tmp, mu=mu, sigma=sigma, kid_features=features[:KID_FEATURES])
    shutil.rmtree(path.with_suffix('.parts'), ignore_errors=True)
  return mu, sigma, features[:KID_FEATURES]


CHUNK = 1000  # Images per saved chunk of features.


def _resumable_features(images: np.ndarray, extractor, parts: Path) -> np.ndarray:
  """Features of `images`, saved chunk by chunk into `parts/`: an interrupted extraction
  (50k CIFAR-10 images take ~80 min on a 2-core CPU) resumes where it stopped."""
  parts.mkdir(parents=True, exist_ok=True)
  chunk = CHUNK
  starts = range(0, len(images), chunk)
  done = sum((parts / f'{start:07d}.npy').exists() for start in starts)
  if done:
    print(f'Resuming: {done} of {len(starts)} chunks already in {parts}.', flush=True)
  out = []
  for start in tqdm.tqdm(starts, desc='feature chunks', unit='chunk',
                         disable=len(starts) < 3):
    part = parts / f'{start:07d}.npy'
    if not part.exists():
      features = extractor(images[start:start + chunk])
      np.save(part.with_suffix('.tmp.npy'), features)
      part.with_suffix('.tmp.npy').replace(part)  # Atomic: no half-written chunk.
    out.append(np.load(part))
  return np.concatenate(out)


@registry.register('fid')
def make(context: registry.Context) -> registry.Metric:
  """FID of the samples against the reference split (Heusel et al. 2017)."""
  mu, sigma, _ = context.reference_stats

  def fid_of(samples: registry.Samples) -> dict:
    return {'eval/fid': frechet_distance(*feature_stats(samples.features), mu, sigma)}

  return fid_of


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description='FID and KID between two image sets.')
  parser.add_argument('a')
  parser.add_argument('b')
  parser.add_argument('--num_samples', '--num-samples', type=int, default=0,
                      help='first N of each set (0: all)')
  parser.add_argument('--batch_size', '--batch-size', type=int, default=25)
  args = parser.parse_args(argv)
  from gan.metrics.inception import FeatureExtractor  # Loads (or converts) the weights.
  extractor = FeatureExtractor(args.batch_size)
  stats, counts = [], []
  for spec in (args.a, args.b):
    images, checksum = load_images(spec, args.num_samples)
    print(f'{spec}: {len(images)} images (sha256 {checksum})', flush=True)
    stats.append(cached_stats(spec, images, extractor))  # Reused by later calls.
    counts.append(len(images))
  from gan.metrics.kid import kernel_inception_distance
  (mu1, sigma1, kid1), (mu2, sigma2, kid2) = stats
  fid = frechet_distance(mu1, sigma1, mu2, sigma2)
  kid, kid_std = kernel_inception_distance(kid1, kid2)
  print(f'FID {fid:.3f}   KID {kid:.5f} +- {kid_std:.5f}   ({counts[0]} vs {counts[1]} images; '
        f'KID on up to {KID_FEATURES} of each)')


if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()
  main()
