"""Sample quality of a run (FID/KID, recognisability): during training and by
`python -m gan.evaluate`, on the real networks."""

import json
import os

import numpy as np
import pytest

from gan import evaluate, loop, models
from gan.metrics import weights
from gan.state import sampling_variables

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
    assert 0 <= r['eval/recognisable'] <= 1
    assert sum(r['eval/class_histogram']) == 20 and len(r['eval/class_histogram']) == 10
    assert 0 <= r['eval/class_entropy'] <= np.log(10) + 1e-9
    assert 'eval/is' not in r  # No logits-layer weights given: no Inception Score.
  assert list(fid_cache.glob('fid-stats-cifar10-test-*.npz'))  # Reference cached.

  evaluate.main(['--workdir', str(tmp_path), '--num-samples', '20', '--reference', 'test',
                 '--batch_size', '8'])
  last = json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[-1])
  assert last['step'] == evals[-1]['step'] and last['epoch'] == 2.0
  # Same checkpoint, same eval noise, same reference: the same numbers (any batch size).
  np.testing.assert_allclose(last['eval/fid'], evals[-1]['eval/fid'], rtol=1e-6)
  assert last['eval/class_histogram'] == evals[-1]['eval/class_histogram']


def test_evaluate_samples_the_ema_generator(smoke_config, tmp_path, fid_cache):
  """With G's EMA kept, the evaluated samples are the EMA's, not the last iterate's."""
  smoke_config.train.g_ema_decay = 0.99
  smoke_config.eval.reference_split = 'test'
  state = loop.train_and_evaluate(smoke_config, tmp_path)
  generator, _ = models.build_models(smoke_config)
  evaluator = evaluate.Evaluator(smoke_config, generator, 'test', batch_size=8)
  ema_samples = evaluator.samples(sampling_variables(state), 8)
  live = {'params': state.g.params, 'batch_stats': state.g.batch_stats}
  assert not np.array_equal(ema_samples, evaluator.samples(live, 8))
  record = evaluate.evaluate_run(tmp_path, 8, 'test', batch_size=8)
  np.testing.assert_allclose(
      record['eval/fid'], evaluator(sampling_variables(state), 8)['eval/fid'], rtol=1e-6)
