"""FID/KID arithmetic, the reference resize, the weights converter, and the FID network
against the reference TorchScript (where its archive is given)."""

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from gan import data
from gan.metrics import fid, inception, kid, weights


def _gaussian(n, d, seed, shift=0.0):
  """n draws of one correlated Gaussian in d dimensions (the same for every seed), shifted."""
  mixing = np.random.default_rng(1234).normal(size=(d, d)) / np.sqrt(d)
  return np.random.default_rng(seed).normal(size=(n, d)) @ mixing + shift


def test_fid_of_a_set_with_itself_is_zero_and_matches_scipy():
  a, b = _gaussian(600, 16, 0), _gaussian(600, 16, 1, shift=0.3)
  stats_a, stats_b = fid.feature_stats(a), fid.feature_stats(b)
  assert abs(fid.frechet_distance(*stats_a, *stats_a)) < 1e-8
  mu1, s1 = stats_a
  mu2, s2 = stats_b
  reference = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
               - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
  np.testing.assert_allclose(fid.frechet_distance(*stats_a, *stats_b), reference, rtol=1e-8)


def test_fid_and_kid_grow_with_the_perturbation():
  base = _gaussian(800, 32, 0)
  fids, kids = [], []
  for shift in (0.0, 0.2, 0.5, 1.0):
    other = _gaussian(800, 32, 1, shift=shift)
    fids.append(fid.frechet_distance(*fid.feature_stats(base), *fid.feature_stats(other)))
    kids.append(kid.kernel_inception_distance(base, other, num_subsets=10, subset_size=200)[0])
  assert fids == sorted(fids) and fids[-1] > 10 * max(fids[0], 1e-3)
  assert kids == sorted(kids)
  assert abs(kids[0]) < 0.1 * kids[-1]  # Unbiased: ~0 for two draws of one distribution.


def test_square_root_is_stable_on_rank_deficient_covariances():
  """Fewer samples than features: singular covariances; the result stays real and finite."""
  a, b = _gaussian(40, 256, 0), _gaussian(40, 256, 1)
  stats_a, stats_b = fid.feature_stats(a), fid.feature_stats(b)
  assert np.linalg.matrix_rank(stats_a[1]) < 256
  value = fid.frechet_distance(*stats_a, *stats_b)
  assert isinstance(value, float) and np.isfinite(value) and value > 0
  assert abs(fid.frechet_distance(*stats_a, *stats_a)) < 1e-6 * np.trace(stats_a[1])


def test_resize_is_tf1_bilinear_without_half_pixel_offset():
  matrix = inception.resize_matrix(2, 4)  # Sources 0, 0.5, 1, 1.5 -> clamped to 1.
  np.testing.assert_allclose(matrix, [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
  np.testing.assert_allclose(inception.resize_matrix(32).sum(axis=1), 1, rtol=1e-6)
  np.testing.assert_allclose(inception.resize_matrix(7, 7), np.eye(7))
  images = np.array([0, 255], np.uint8).reshape(2, 1, 1, 1).repeat(3, -1)
  out = np.asarray(inception.preprocess(images))
  assert out.shape == (2, 299, 299, 3)
  np.testing.assert_allclose(out[0], -1.0)
  np.testing.assert_allclose(out[1], 0.9921875)


def _archive(pickled: bytes) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as archive:
    archive.writestr('net/data.pkl', pickled)
  return buffer.getvalue()


class _Exploit:
  def __reduce__(self):
    return (os.system, ('echo pwned',))


def test_converter_refuses_foreign_types():
  with pytest.raises(weights.WeightsError, match='refusing to load (posix|os).system'):
    weights.read_torchscript(_archive(pickle.dumps({'net': _Exploit()}, protocol=2)))
  with pytest.raises(weights.WeightsError, match='refusing to load builtins.eval'):
    weights.read_torchscript(_archive(b'cbuiltins\neval\n(S"1"\ntR.'))
  with pytest.raises(weights.WeightsError, match='one <name>/data.pkl'):
    weights.read_torchscript(_empty_zip())


def _empty_zip() -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w'):
    pass
  return buffer.getvalue()


def test_converter_refuses_another_archive(tmp_path):
  with pytest.raises(weights.WeightsError, match='sha256'):
    weights.convert(b'not the archive', tmp_path / 'w.npz')


TORCHSCRIPT = os.environ.get('GAN_FID_TORCHSCRIPT', '')


@pytest.mark.skipif(not (TORCHSCRIPT and os.environ.get(data.ENV_DIR)),
                    reason='needs $GAN_FID_TORCHSCRIPT (default_1.pt) and $GAN_CIFAR10_DIR')
def test_jax_features_equal_the_reference_torchscript(tmp_path):
  torch = pytest.importorskip('torch')
  arrays = dict(np.load(weights.convert(Path(TORCHSCRIPT).read_bytes(), tmp_path / 'w.npz')))
  assert sum(k.endswith('/kernel') for k in arrays) == 94
  images = data.read_binary(os.environ[data.ENV_DIR], 'test')[0][:6]  # Real CIFAR-10.
  # Padded last batch; XLA's convolutions everywhere, and the CPU's Winograd path.
  ours = inception.FeatureExtractor(batch_size=4, arrays=arrays, fast=False)(images)
  fast = inception.FeatureExtractor(batch_size=4, arrays=arrays, fast=True)(images)
  # The same features to float32 rounding (~1e-6 of their scale measured; 1e-5 allowed).
  np.testing.assert_allclose(fast, ours, atol=1e-5 * np.abs(ours).max())

  # The reference: TF1 resize_bilinear as grid_sample sampling source pixel j * 32 / 299,
  # then (x - 128) / 128, through the TorchScript itself.
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
  coords = ((torch.arange(299, dtype=torch.float64) * 32 / 299 + 0.5) / 32 * 2 - 1).float()
  grid_y, grid_x = torch.meshgrid(coords, coords, indexing='ij')
  grid = torch.stack([grid_x, grid_y], -1)[None].repeat(len(images), 1, 1, 1)
  resized = torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border',
                                            align_corners=False)
  np.testing.assert_allclose(np.asarray(inception.preprocess(images)),
                             ((resized - 128) / 128).permute(0, 2, 3, 1).numpy(), atol=1e-5)
  with torch.no_grad():
    reference = torch.jit.load(TORCHSCRIPT).eval()((resized - 128) / 128).numpy()
  assert ours.shape == (6, 2048) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, reference, atol=1e-4)
  np.testing.assert_allclose(fast, reference, atol=1e-4)


def test_image_sets_from_npz_and_their_errors(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  np.savez(tmp_path / 'ok.npz', images=images)
  loaded, checksum = fid.load_images(str(tmp_path / 'ok.npz'), num_samples=3)
  np.testing.assert_array_equal(loaded, images[:3])
  assert checksum == fid.load_images(str(tmp_path / 'ok.npz'), num_samples=3)[1]
  np.savez(tmp_path / 'float.npz', images=images.astype(np.float32))
  with pytest.raises(ValueError, match='expected uint8 images'):
    fid.load_images(str(tmp_path / 'float.npz'))
  np.savez(tmp_path / 'other.npz', x=images)
  with pytest.raises(ValueError, match='array named images'):
    fid.load_images(str(tmp_path / 'other.npz'))
  with pytest.raises(FileNotFoundError, match='neither a cifar10'):
    fid.load_images(str(tmp_path / 'missing.npz'))


@pytest.mark.skipif(not TORCHSCRIPT, reason='needs $GAN_FID_TORCHSCRIPT (default_1.pt)')
def test_fid_command_line(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv('GAN_CACHE_DIR', str(tmp_path / 'cache'))
  weights.main(['--torchscript', TORCHSCRIPT])
  assert (tmp_path / 'cache' / weights.FILENAME).exists()
  rng = np.random.default_rng(0)
  for name, offset in (('a', 0), ('b', 100)):
    images = np.clip(rng.integers(0, 156, (24, 32, 32, 3)) + offset, 0, 255).astype(np.uint8)
    np.savez(tmp_path / f'{name}.npz', images=images)
  fid.main([str(tmp_path / 'a.npz'), str(tmp_path / 'a.npz'), '--batch_size', '12'])
  same = capsys.readouterr().out
  fid.main([str(tmp_path / 'a.npz'), str(tmp_path / 'b.npz'), '--batch_size', '12'])
  different = capsys.readouterr().out
  value = lambda out: float(out.strip().splitlines()[-1].split('FID ')[1].split()[0])
  assert abs(value(same)) < 1e-2 and value(different) > 10


def test_dataset_split_as_image_set(tiny_cifar_dir, monkeypatch):
  monkeypatch.setenv(data.ENV_DIR, str(tiny_cifar_dir))
  images, _ = fid.load_images('cifar10:test')
  np.testing.assert_array_equal(images, data.read_binary(tiny_cifar_dir, 'test')[0])


def test_cached_stats_are_reused_and_keyed_by_the_images(tmp_path, monkeypatch):
  monkeypatch.setenv('GAN_CACHE_DIR', str(tmp_path))
  calls = []

  def extractor(images):
    calls.append(len(images))
    return images.reshape(len(images), -1)[:, :16].astype(np.float32)

  images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
  mu, sigma, kid = fid.cached_stats('cifar10:test', images, extractor)
  again = fid.cached_stats('cifar10:test', images, extractor)
  assert calls == [40]  # The second call read the cache.
  for a, b in zip((mu, sigma, kid), again):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(mu, extractor(images).mean(0), rtol=1e-6)
  calls.clear()
  changed = images.copy()
  changed[0, 0, 0, 0] ^= 1
  fid.cached_stats('cifar10:test', changed, extractor)
  assert calls == [40]  # One changed pixel: a different key, computed afresh.
  assert len(list(tmp_path.glob('fid-stats-cifar10-test-*.npz'))) == 2


def test_interrupted_statistics_resume_from_saved_chunks(tmp_path, monkeypatch):
  monkeypatch.setenv('GAN_CACHE_DIR', str(tmp_path))
  monkeypatch.setattr(fid, 'CHUNK', 16)
  images = np.random.default_rng(1).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
  features = lambda x: x.reshape(len(x), -1)[:, :8].astype(np.float32)
  calls = []

  def failing(x):
    if calls:
      raise KeyboardInterrupt  # Stopped during the second chunk.
    calls.append(len(x))
    return features(x)

  with pytest.raises(KeyboardInterrupt):
    fid.cached_stats('set', images, failing)
  assert len(list(tmp_path.glob('*.parts/*.npy'))) == 1  # The first chunk survived.
  resumed_calls = []
  mu, sigma, _ = fid.cached_stats('set', images, lambda x: resumed_calls.append(len(x)) or features(x))
  assert resumed_calls == [16, 8]  # Only the chunks not yet saved.
  expected = fid.feature_stats(features(images))
  np.testing.assert_allclose(mu, expected[0], rtol=1e-6)
  np.testing.assert_allclose(sigma, expected[1], rtol=1e-6, atol=1e-9)
  assert not list(tmp_path.glob('*.parts'))  # Cleaned up once the statistics are cached.
