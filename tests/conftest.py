"""Shared fixtures. Two host CPU devices, so every step in the tests is really sharded."""

import os

# Must precede the first `import jax` of the session.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=2').strip()

from gan import cpu_defaults  # noqa: E402

cpu_defaults.apply_xla_flags()  # As every entry point does, before JAX starts.

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from configs import recap  # noqa: E402
from gan import data  # noqa: E402

# Many tests compile the same smoke-sized step; XLA's persistent cache compiles it once.
jax.config.update('jax_compilation_cache_dir', str(Path(tempfile.gettempdir()) / 'gan-tests-xla-cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def load_benchmark(name: str):
  """The module benchmarks/<name>.py (a directory of programs, not a package)."""
  import importlib.util
  path = Path(__file__).resolve().parents[1] / 'benchmarks' / f'{name}.py'
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def make_images(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Random but structured uint8 images (a colour ramp per label) and their labels."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, num).astype(np.int32)
  ramp = np.linspace(0, 200, 32, dtype=np.float32)
  images = ramp[None, :, None, None] + 5 * labels[:, None, None, None]
  images = images + rng.integers(0, 50, (num, 32, 32, 3))
  return np.broadcast_to(images, (num, 32, 32, 3)).astype(np.uint8), labels


def write_binary_split(directory: Path, split: str, per_file: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Writes `split` in the official binary layout; returns what was written."""
  directory.mkdir(parents=True, exist_ok=True)
  all_images, all_labels = [], []
  for i, name in enumerate(data._SPLIT_FILES[split]):
    images, labels = make_images(per_file, seed + i)
    planes = images.transpose(0, 3, 1, 2).reshape(per_file, -1)  # R, G, B planes.
    records = np.concatenate([labels[:, None].astype(np.uint8), planes], axis=1)
    records.tofile(directory / f'{name}.bin')
    all_images.append(images)
    all_labels.append(labels)
  return np.concatenate(all_images), np.concatenate(all_labels)


@pytest.fixture(scope='session')
def tiny_cifar_dir(tmp_path_factory) -> Path:
  """A cifar-10-batches-bin folder with 5 x 24 train and 24 test images."""
  directory = tmp_path_factory.mktemp('data') / 'cifar-10-batches-bin'
  write_binary_split(directory, 'train', per_file=24, seed=0)
  write_binary_split(directory, 'test', per_file=24, seed=10)
  return directory


@pytest.fixture
def smoke_config(tiny_cifar_dir):
  """configs/recap.py:smoke reading the tiny folder, without progress bar."""
  config = recap.get_config('smoke')
  config.data.dir = str(tiny_cifar_dir)
  config.log.progress_bar = False
  return config
