"""Every CIFAR-10 source, read from small files the tests write, and its failures."""

import os
import pickle

import ml_collections
import numpy as np
import pytest

from configs import baseline
from gan import data
from tests.conftest import make_images, write_binary_split


def _data_config(**overrides) -> ml_collections.ConfigDict:
  config = baseline.get_config().data
  config.update(overrides)
  return config


def write_python_split(directory, split, per_file, seed, protocol=2):
  """The official python layout: pickled dicts with bytes keys, data [N, 3072]."""
  directory.mkdir(parents=True, exist_ok=True)
  written = []
  for i, name in enumerate(data._SPLIT_FILES[split]):
    images, labels = make_images(per_file, seed + i)
    batch = {b'batch_label': b'batch', b'labels': labels.tolist(),
             b'data': images.transpose(0, 3, 1, 2).reshape(per_file, -1),
             b'filenames': [b'x.png'] * per_file}
    (directory / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    written.append((images, labels))
  return np.concatenate([w[0] for w in written]), np.concatenate([w[1] for w in written])


def test_binary_round_trip(tmp_path):
  images, labels = write_binary_split(tmp_path, 'train', per_file=7, seed=0)
  got_images, got_labels = data.read_binary(tmp_path, 'train')
  assert got_images.shape == (35, 32, 32, 3) and got_images.dtype == np.uint8
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize('protocol', [2, 4])
def test_python_round_trip(tmp_path, protocol):
  images, labels = write_python_split(tmp_path, 'test', per_file=9, seed=3, protocol=protocol)
  got_images, got_labels = data.read_python(tmp_path, 'test')
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)


def test_both_formats_agree_and_auto_detects_them(tmp_path):
  write_binary_split(tmp_path / 'cifar-10-batches-bin', 'train', per_file=5, seed=1)
  write_python_split(tmp_path / 'cifar-10-batches-py', 'train', per_file=5, seed=1)
  from_bin = data.load(_data_config(dir=str(tmp_path / 'cifar-10-batches-bin')))
  from_py = data.load(_data_config(dir=str(tmp_path / 'cifar-10-batches-py')))
  for a, b in zip(from_bin, from_py):
    np.testing.assert_array_equal(a, b)
  # A parent folder works too; the binary copy is preferred when both are there.
  assert data.detect_format(tmp_path)[0] == 'binary'


def test_environment_variable_names_the_folder(tmp_path, monkeypatch):
  write_binary_split(tmp_path, 'train', per_file=4, seed=0)
  monkeypatch.setenv(data.ENV_DIR, str(tmp_path))
  images, _ = data.load(_data_config(num_examples=6))
  assert images.shape == (6, 32, 32, 3)


def test_missing_folder_and_file(tmp_path):
  with pytest.raises(data.DataError, match='no such folder'):
    data.load(_data_config(dir=str(tmp_path / 'nowhere')))
  with pytest.raises(data.DataError, match='holds no CIFAR-10 train split'):
    data.load(_data_config(dir=str(tmp_path)))
  write_binary_split(tmp_path, 'train', per_file=4, seed=0)
  os.remove(tmp_path / 'data_batch_3.bin')
  with pytest.raises(data.DataError, match='data_batch_3.bin: missing'):
    data.read_binary(tmp_path, 'train')


def test_truncated_binary_file(tmp_path):
  write_binary_split(tmp_path, 'train', per_file=4, seed=0)
  path = tmp_path / 'data_batch_2.bin'
  path.write_bytes(path.read_bytes()[:-100])
  with pytest.raises(data.DataError, match=r'data_batch_2\.bin.*truncated'):
    data.read_binary(tmp_path, 'train')


def test_corrupt_binary_labels(tmp_path):
  write_binary_split(tmp_path, 'test', per_file=4, seed=0)
  path = tmp_path / 'test_batch.bin'
  raw = bytearray(path.read_bytes())
  raw[0] = 200  # A label byte out of 0..9.
  path.write_bytes(bytes(raw))
  with pytest.raises(data.DataError, match=r'test_batch\.bin.*labels must be in 0\.\.9'):
    data.read_binary(tmp_path, 'test')


def test_truncated_and_malformed_python_files(tmp_path):
  write_python_split(tmp_path, 'test', per_file=4, seed=0)
  path = tmp_path / 'test_batch'
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(data.DataError, match='test_batch: not a readable'):
    data.read_python(tmp_path, 'test')
  path.write_bytes(pickle.dumps({b'data': np.zeros((4, 100), np.uint8), b'labels': [0] * 4}))
  with pytest.raises(data.DataError, match=r'uint8 \[N, 3072\]'):
    data.read_python(tmp_path, 'test')


class _Exploit:
  def __reduce__(self):
    return (os.system, ('echo pwned > /dev/null',))


def test_python_reader_refuses_code_in_pickles(tmp_path):
  write_python_split(tmp_path, 'test', per_file=4, seed=0)
  (tmp_path / 'test_batch').write_bytes(pickle.dumps({b'data': _Exploit(), b'labels': []}))
  with pytest.raises(data.DataError, match='refusing to load (posix|os).system'):
    data.read_python(tmp_path, 'test')


def test_bad_source_settings(tmp_path):
  write_binary_split(tmp_path, 'test', per_file=4, seed=0)
  with pytest.raises(data.DataError, match="source='python' but the folder holds the binary"):
    data.load(_data_config(source='python', dir=str(tmp_path), split='test'))
  with pytest.raises(data.DataError, match='exceeds'):
    data.load(_data_config(dir=str(tmp_path), split='test', num_examples=5))


def test_tfds_source_on_its_mock(monkeypatch, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.delenv(data.ENV_DIR, raising=False)
  monkeypatch.setenv('GAN_CACHE_DIR', str(tmp_path))  # No earlier download to prefer.
  with tfds.testing.mock_data(num_examples=6):
    images, labels = data.load(_data_config())  # 'auto' with no folder -> TFDS.
  assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
  assert labels.shape == (6,) and labels.min() >= 0 and labels.max() < 10


def test_to_float_and_epoch_permutation():
  images = np.array([0, 255, 128], np.uint8)
  np.testing.assert_allclose(data.to_float(images), [-1.0, 1.0, 128 / 127.5 - 1], atol=1e-6)
  first = data.epoch_permutation(seed=0, epoch=0, num_examples=100)
  np.testing.assert_array_equal(first, data.epoch_permutation(0, 0, 100))
  assert sorted(first) == list(range(100))
  assert not np.array_equal(first, data.epoch_permutation(0, 1, 100))  # Reshuffled.
  assert not np.array_equal(first, data.epoch_permutation(1, 0, 100))  # Seeded.


@pytest.mark.skipif(not os.environ.get(data.ENV_DIR), reason=f'${data.ENV_DIR} not set')
def test_real_cifar10_copy():
  """The full dataset, where one is configured (CI points at the shared copy)."""
  config = _data_config()
  train, train_labels = data.load(config)
  config.split = 'test'
  test, test_labels = data.load(config)
  assert train.shape == (50_000, 32, 32, 3) and test.shape == (10_000, 32, 32, 3)
  assert np.bincount(train_labels).tolist() == [5000] * 10
  assert np.bincount(test_labels).tolist() == [1000] * 10
  # The published per-channel train mean.
  np.testing.assert_allclose(train.reshape(-1, 3).mean(0), [125.307, 122.950, 113.865], atol=1e-3)
