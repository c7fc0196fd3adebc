"""CIFAR-10 as uint8 arrays, from TFDS or a local copy, and the batch order of each epoch.

Sources (`config.data.source`):
  'tfds'    tfds.data_source('cifar10'): works without TensorFlow once the dataset is
            prepared; preparing (downloading) it needs TensorFlow and internet.
  'binary'  a `cifar-10-batches-bin` folder (the official binary version, the archive
            TFDS itself downloads): data_batch_{1..5}.bin, test_batch.bin.
  'python'  a `cifar-10-batches-py` folder (as Keras and torchvision cache it), read with
            an unpickler that admits numpy arrays and plain builtins only.
  'download' the official binary archive, fetched once into $GAN_CACHE_DIR and verified
            by its checksum (`gan.download`): internet, but no TensorFlow.
  'auto'    the local copy in `config.data.dir` or $GAN_CIFAR10_DIR if either is set (its
            format told by its files); else an earlier download, else TFDS' prepared
            cifar10, else a download.

Every reader returns images [N, 32, 32, 3] uint8 and labels [N] int32 in the official
order, or raises `DataError` naming the path and what was expected. `dataset_spec` says
what the models must fit (image shape, classes); training batches are dicts
{'image': uint8 [N, H, W, C], 'label': int32 [N]}.
"""

import dataclasses
import io
import os
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

ENV_DIR = 'GAN_CIFAR10_DIR'


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSpec:
  """What a data set fixes: image shape, the classes of its labels, its splits' sizes."""
  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...]
  split_sizes: dict

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


# Data sets by `config.data.dataset`.
DATASETS = {
    'cifar10': DatasetSpec((32, 32, 3), ('airplane', 'automobile', 'bird', 'cat', 'deer',
                                         'dog', 'frog', 'horse', 'ship', 'truck'),
                           {'train': 50_000, 'test': 10_000}),
}
# Where the images come from (`config.data.source`), the one list of them.
SOURCES = ('auto', 'tfds', 'download', 'binary', 'python')
SPLITS = tuple(DATASETS['cifar10'].split_sizes)
_RECORD_BYTES = 1 + 32 * 32 * 3  # One label byte, then the R, G and B planes.
_SPLIT_FILES = {
    'train': [f'data_batch_{i}' for i in range(1, 6)],
    'test': ['test_batch'],
}


class DataError(ValueError):
  """Missing, truncated or malformed data; the message names the path."""


def to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], the range of G's tanh output."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def dataset_spec(data_config: ml_collections.ConfigDict) -> DatasetSpec:
  if data_config.dataset not in DATASETS:
    raise DataError(f'Unknown config.data.dataset={data_config.dataset!r}; known: '
                    f'{sorted(DATASETS)}.')
  return DATASETS[data_config.dataset]


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order of the examples in `epoch`: a function of (seed, epoch) alone, so a run
  resumed mid-epoch sees the same batches as an uninterrupted one."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _split_files(split: str) -> list[str]:
  if split not in _SPLIT_FILES:
    raise DataError(f'Unknown CIFAR-10 split {split!r}; use one of {SPLITS}.')
  return _SPLIT_FILES[split]


def _check(images: np.ndarray, labels: np.ndarray, path) -> None:
  if (images.ndim != 4 or images.shape[1:] != DATASETS['cifar10'].image_shape or
      images.dtype != np.uint8):
    raise DataError(f'{path}: expected uint8 images of shape [N, 32, 32, 3], got '
                    f'{images.dtype} {images.shape}.')
  if labels.shape != (images.shape[0],):
    raise DataError(f'{path}: expected one label per image ({images.shape[0]}), got '
                    f'labels of shape {labels.shape}.')
  if labels.size and (labels.min() < 0 or labels.max() >= DATASETS['cifar10'].num_classes):
    raise DataError(f'{path}: labels must be in 0..9, found {labels.min()}..{labels.max()}; '
                    f'the file is corrupt or not CIFAR-10.')


def read_binary(directory: str | Path, split: str = 'train') -> tuple[np.ndarray, np.ndarray]:
  """Reads the official binary version: records of 1 label byte + 3072 pixel bytes."""
  directory = Path(directory)
  images, labels = [], []
  for name in _split_files(split):
    path = directory / f'{name}.bin'
    if not path.is_file():
      raise DataError(f'{path}: missing; a cifar-10-batches-bin folder holds '
                      f'data_batch_1.bin ... data_batch_5.bin and test_batch.bin.')
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % _RECORD_BYTES:
      raise DataError(f'{path}: {raw.size} bytes is not a whole number of {_RECORD_BYTES}-byte '
                      f'records (1 label + 32*32*3 pixels); the file is truncated or not '
                      f'CIFAR-10 binary.')
    records = raw.reshape(-1, _RECORD_BYTES)
    labels.append(records[:, 0].astype(np.int32))
    images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    _check(images[-1], labels[-1], path)
  return np.concatenate(images), np.concatenate(labels)


class _ArrayUnpickler(pickle.Unpickler):
  """Admits numpy arrays and plain builtins only: a pickle naming anything else (os.system,
  builtins.eval, ...) is refused before it can run."""
  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
      ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
      ('numpy', 'ndarray'), ('numpy', 'dtype'),
      ('_codecs', 'encode'),  # How protocol 2 stores bytes on Python 3.
  } | {('builtins', name) for name in
       ('list', 'dict', 'tuple', 'set', 'frozenset', 'bytes', 'bytearray', 'str', 'int',
        'float', 'bool', 'complex')} | {('__builtin__', 'list'), ('__builtin__', 'dict')}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refusing to load {module}.{name}: a CIFAR-10 batch '
                                   f'holds only numpy arrays and builtins.')
    return super().find_class(module, name)


def _unpickle_batch(path: Path) -> dict:
  try:
    batch = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding='bytes').load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
    raise DataError(f'{path}: not a readable CIFAR-10 python batch ({error}).') from error
  if not isinstance(batch, dict):
    raise DataError(f'{path}: expected a dict with data and labels, got {type(batch).__name__}.')
  # Batches pickled by Python 2 have bytes keys; ones written by Python 3 may have str.
  return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def read_python(directory: str | Path, split: str = 'train') -> tuple[np.ndarray, np.ndarray]:
  """Reads the official python version: pickled dicts of data [N, 3072] and labels."""
  directory = Path(directory)
  images, labels = [], []
  for name in _split_files(split):
    path = directory / name
    if not path.is_file():
      raise DataError(f'{path}: missing; a cifar-10-batches-py folder holds '
                      f'data_batch_1 ... data_batch_5 and test_batch.')
    batch = _unpickle_batch(path)
    if 'data' not in batch or 'labels' not in batch:
      raise DataError(f'{path}: expected keys data and labels, found {sorted(batch)}.')
    pixels = np.asarray(batch['data'])
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3072:
      raise DataError(f'{path}: expected data of uint8 [N, 3072], got {pixels.dtype} '
                      f'{pixels.shape}; the file is truncated or not CIFAR-10.')
    images.append(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    labels.append(np.asarray(batch['labels'], np.int32))
    _check(images[-1], labels[-1], path)
  return np.concatenate(images), np.concatenate(labels)


def read_tfds(split: str = 'train', data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads TFDS' prepared cifar10 through its data source (random access, no TensorFlow)."""
  import tensorflow_datasets as tfds  # Slow to import; only this source needs it.
  try:
    # download=False: preparing it needs TensorFlow (and offline, minutes of retries);
    # only a prepared copy is read here.
    source = tfds.data_source('cifar10', split=split, data_dir=data_dir or None,
                              download=False)
  except Exception as error:
    raise DataError(
        f'TFDS could not provide cifar10 (data_dir={data_dir or "TFDS default"}): {error}\n'
        f'Preparing it needs TensorFlow and internet; config.data.source=\'download\' '
        f'fetches the official archive without TensorFlow, or point {ENV_DIR} (or '
        f'config.data.dir) at a local cifar-10-batches-bin or cifar-10-batches-py '
        f'folder.') from error
  records = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(r['image'], np.uint8) for r in records])
  labels = np.asarray([r['label'] for r in records], np.int32)
  _check(images, labels, f'tfds:cifar10/{split}')
  return images, labels


def detect_format(directory: str | Path, split: str = 'train') -> tuple[str, Path]:
  """('binary' | 'python', folder) for a folder holding a CIFAR-10 copy or its parent."""
  directory = Path(directory)
  first = _split_files(split)[0]
  if not directory.is_dir():
    raise DataError(f'{directory}: no such folder; expected a cifar-10-batches-bin or '
                    f'cifar-10-batches-py folder (or one holding either).')
  for folder in (directory, directory / 'cifar-10-batches-bin', directory / 'cifar-10-batches-py'):
    if (folder / f'{first}.bin').is_file():
      return 'binary', folder
    if (folder / first).is_file():
      return 'python', folder
  raise DataError(f'{directory}: holds no CIFAR-10 {split} split; expected {first}.bin '
                  f'(binary version) or {first} (python version) in it or in a '
                  f'cifar-10-batches-bin / cifar-10-batches-py folder under it.')


def load_split(split: str, directory: str = '', num_examples: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
  """A split with the default data settings: `directory`, else $GAN_CIFAR10_DIR, else TFDS."""
  return load(ml_collections.ConfigDict({'dataset': 'cifar10', 'source': 'auto',
                                         'dir': directory, 'tfds_data_dir': '', 'split': split,
                                         'num_examples': num_examples}))


def _fetch() -> Path:
  from gan import download
  try:
    return download.fetch()
  except download.DownloadError as error:
    raise DataError(str(error)) from error


def _auto_without_folder(data_config) -> tuple[np.ndarray, np.ndarray]:
  """No folder named: an earlier download, else TFDS' prepared cifar10, else a download
  (preparing TFDS' copy would need TensorFlow)."""
  from gan import download
  if download.cached_folder() is None:
    try:
      return read_tfds(data_config.split, data_config.tfds_data_dir)
    except DataError as error:
      print(f'TFDS has no prepared cifar10 ({str(error).splitlines()[0][:200]}); '
            f'downloading the official archive instead.', flush=True)
  return read_binary(_fetch(), data_config.split)


def load(data_config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 32, 32, 3], labels int32 [N]) as `config.data` selects."""
  dataset_spec(data_config)  # Only CIFAR-10 is read here; anything else fails by name.
  source = data_config.source
  directory = data_config.dir or os.environ.get(ENV_DIR, '')
  if source == 'auto' and not directory:
    images, labels = _auto_without_folder(data_config)
  elif source == 'tfds':
    images, labels = read_tfds(data_config.split, data_config.tfds_data_dir)
  elif source == 'download':
    images, labels = read_binary(_fetch(), data_config.split)
  elif source in ('auto', 'binary', 'python'):
    if not directory:
      raise DataError(f'config.data.source={source!r} needs a folder: set config.data.dir '
                      f'or ${ENV_DIR}.')
    found, folder = detect_format(directory, data_config.split)
    if source != 'auto' and found != source:
      raise DataError(f'{directory}: config.data.source={source!r} but the folder holds the '
                      f'{found} version of CIFAR-10.')
    reader = read_binary if found == 'binary' else read_python
    images, labels = reader(folder, data_config.split)
  else:
    raise DataError(f'Unknown config.data.source={source!r}; use one of {SOURCES}.')
  if data_config.num_examples:
    if data_config.num_examples > len(images):
      raise DataError(f'config.data.num_examples={data_config.num_examples} exceeds the '
                      f'{len(images)} examples of the {data_config.split} split.')
    images, labels = images[:data_config.num_examples], labels[:data_config.num_examples]
  return images, labels
