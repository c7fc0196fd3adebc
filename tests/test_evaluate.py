"""FID/KID of a run: during training and by `python -m gan.evaluate`, on the real network."""

import json
import os

import numpy as np
import pytest

from gan import evaluate, loop
from gan.metrics import weights

TORCHSCRIPT = os.environ.get('GAN_FID_TORCHSCRIPT', '')
pytestmark = pytest.mark.skipif(not TORCHSCRIPT, reason='needs $GAN_FID_TORCHSCRIPT (default_1.pt)')


@pytest.fixture
def fid_cache(tmp_path_factory, monkeypatch):
  cache = tmp_path_factory.mktemp('cache')
  monkeypatch.setenv('GAN_CACHE_DIR', str(cache))
  weights.main(['--torchscript', TORCHSCRIPT])
  return cache


def test_fid_during_training_and_after(smoke_config, tmp_path, fid_cache):
  smoke_config.eval.every_epochs = 1
  smoke_config.eval.num_samples = 20
  smoke_config.eval.reference_split = 'test'  # 24 images in the tiny folder.
  smoke_config.eval.batch_size = 10
  loop.train_and_evaluate(smoke_config, tmp_path)
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  evals = [r for r in records if 'eval/fid' in r]
  assert [r['epoch'] for r in evals] == [1.0, 2.0]
  for r in evals:
    assert np.isfinite(r['eval/fid']) and r['eval/fid'] > 0
    assert r['eval/num_samples'] == 20 and r['eval/reference'] == 'cifar10:test'
  assert list(fid_cache.glob('fid-stats-cifar10-test-*.npz'))  # Reference cached.

  evaluate.main(['--workdir', str(tmp_path), '--num_samples', '20', '--reference', 'test',
                 '--batch_size', '8'])
  last = json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[-1])
  assert last['step'] == evals[-1]['step'] and last['epoch'] == 2.0
  # Same checkpoint, same eval noise, same reference: the same numbers (any batch size).
  np.testing.assert_allclose(last['eval/fid'], evals[-1]['eval/fid'], rtol=1e-6)
