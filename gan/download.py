"""CIFAR-10's official binary archive, fetched once, verified and cached: no TensorFlow.

`data.load` falls back to this when no local copy is named and TFDS has no prepared
cifar10 (preparing one needs TensorFlow). The archive is the one TFDS itself downloads,
from its authors' page; its size and SHA-256 are those published for it (the page gives
the MD5, c32a1d4ab5d03f1284b67883e8d87530). It goes to
`$GAN_CACHE_DIR/cifar-10-binary.tar.gz` and its six data files to
`$GAN_CACHE_DIR/cifar-10-batches-bin`, which the binary reader then reads.

Nothing half-done passes for data: the download streams into a `.part` file, hashed on
the way, and is renamed into place only when size and hash match; the files are extracted
into a temporary folder renamed into place at the end. A failure removes what it wrote.
`$GAN_CIFAR10_URL` points at a mirror (the tests serve a small archive from localhost).
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import tqdm

from gan.cache import cache_dir

URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
SIZE = 170_052_171
SHA256 = 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd'
URL_ENV = 'GAN_CIFAR10_URL'
FOLDER = 'cifar-10-batches-bin'
MEMBERS = tuple(f'{FOLDER}/{name}.bin' for name in
                [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch'])


class DownloadError(OSError):
  """The archive could not be fetched, or is not the one expected."""


def cached_folder() -> Path | None:
  """The extracted folder of an earlier download, or None."""
  folder = cache_dir() / FOLDER
  return folder if all((folder.parent / m).is_file() for m in MEMBERS) else None


def fetch(url: str = '', progress: bool = True) -> Path:
  """The cached cifar-10-batches-bin folder, downloaded and extracted first if need be."""
  folder = cached_folder()
  if folder is not None:
    return folder
  url, size, sha256 = url or os.environ.get(URL_ENV) or URL, SIZE, SHA256
  directory = cache_dir()
  directory.mkdir(parents=True, exist_ok=True)
  archive = directory / 'cifar-10-binary.tar.gz'
  if not (archive.is_file() and _sha256(archive) == sha256):
    _download(url, archive, size, sha256, progress)
  _extract(archive, directory)
  return directory / FOLDER


def _sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def _download(url: str, archive: Path, size: int, sha256: str, progress: bool) -> None:
  part = archive.with_name(archive.name + '.part')
  digest, received = hashlib.sha256(), 0
  try:
    with urllib.request.urlopen(url, timeout=30) as response, open(part, 'wb') as out, \
        tqdm.tqdm(total=size, unit='B', unit_scale=True, disable=not progress,
                  desc=f'CIFAR-10 from {url}') as bar:
      for chunk in iter(lambda: response.read(1 << 20), b''):
        out.write(chunk)
        digest.update(chunk)
        received += len(chunk)
        bar.update(len(chunk))
    if received != size or digest.hexdigest() != sha256:
      raise DownloadError(f'{url}: got {received:,} bytes with SHA-256 {digest.hexdigest()}, '
                          f'expected {size:,} bytes with SHA-256 {sha256}; not the official '
                          f'archive (a proxy page, or a cut transfer). Nothing was kept.')
    os.replace(part, archive)
  except (urllib.error.URLError, OSError) as error:
    if isinstance(error, DownloadError):
      raise
    raise DownloadError(f'Could not download CIFAR-10 from {url} ({error}); offline? Point '
                        f'$GAN_CIFAR10_DIR (or config.data.dir) at a local copy.') from error
  finally:
    part.unlink(missing_ok=True)


def _extract(archive: Path, directory: Path) -> None:
  """The six data files only, as regular files under FOLDER (no other path is written)."""
  staging = Path(tempfile.mkdtemp(dir=directory, prefix='.extract-'))
  try:
    with tarfile.open(archive, 'r:gz') as tar:
      for name in MEMBERS:
        member = tar.getmember(name)
        if not member.isfile():
          raise DownloadError(f'{archive}: {name} is not a regular file.')
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(member) as source, open(target, 'wb') as out:
          shutil.copyfileobj(source, out)
    final = directory / FOLDER
    if final.exists():
      shutil.rmtree(final)  # An earlier extraction cut short.
    os.replace(staging / FOLDER, final)
  except (KeyError, tarfile.TarError) as error:
    raise DownloadError(f'{archive}: not the CIFAR-10 binary archive ({error}).') from error
  finally:
    shutil.rmtree(staging, ignore_errors=True)
