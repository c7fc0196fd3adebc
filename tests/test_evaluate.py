"""Sample quality of a run (FID/KID, recognisability): during training and by
`python -m gan.evaluate`, on the real networks."""

import json
import os

import chex
import numpy as np
import pytest

from gan import evaluate, loop
from gan.metrics import weights
from gan.networks import Networks

TORCHSCRIPT = os.environ.get('GAN_FID_TORCHSCRIPT', '')
pytestmark = pytest.mark.skipif(not TORCHSCRIPT, reason='needs $GAN_FID_TORCHSCRIPT (default_1.pt)')


@pytest.fixture
def fid_cache(tmp_path_factory, monkeypatch):
  cache = tmp_path_factory.mktemp('cache')
  monkeypatch.setenv('GAN_CACHE_DIR', str(cache))
  weights.main(['--torchscript', TORCHSCRIPT])
  return cache


def test_fid_during_training_and_after(smoke_config, tmp_path, fid_cache):
  smoke_config.eval.every = '1 epoch'
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
    assert r['g_steps'] == r['step'] and r['d_steps'] == r['step']
    assert 'eval/is' not in r  # Not asked for: no Inception Score.
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
  evaluator = evaluate.Evaluator(smoke_config, Networks(smoke_config), reference_split='test',
                                 batch_size=8)
  ema_variables = evaluator.sampling.variables(state)
  chex.assert_trees_all_equal(ema_variables['params'], state.g_ema)
  ema_samples, labels = evaluator.samples(ema_variables, 8)
  assert labels is None  # An unconditional model: no labels asked for.
  live = evaluator.sampling.variables(state.replace(g_ema=None, g_ema_collections=None))
  assert not np.array_equal(ema_samples, evaluator.samples(live, 8)[0])
  record = evaluate.evaluate_run(tmp_path, 8, 'test', batch_size=8)
  assert record['eval/g_statistics'] == 'standing'  # The protocol, recorded.
  np.testing.assert_allclose(
      record['eval/fid'], evaluator(ema_variables, 8)['eval/fid'], rtol=1e-6)
  running = evaluate.evaluate_run(tmp_path, 8, 'test', batch_size=8, g_statistics='running')
  assert running['eval/g_statistics'] == 'running' and running['eval/fid'] != record['eval/fid']


def test_metrics_are_chosen_by_name(smoke_config, tmp_path, fid_cache):
  """Only the metrics named are measured, during training and by gan.evaluate."""
  smoke_config.eval.every = '2 epochs'
  smoke_config.eval.metrics = ('kid',)
  smoke_config.eval.num_samples = 20
  smoke_config.eval.reference_split = 'test'
  smoke_config.eval.batch_size = 10
  loop.train_and_evaluate(smoke_config, tmp_path)
  evals = [r for r in map(json.loads, (tmp_path / 'metrics.jsonl').read_text().splitlines())
           if 'eval/num_samples' in r]
  assert len(evals) == 1 and evals[0]['epoch'] == 2.0
  assert {k for k in evals[0] if k.startswith('eval/')} == {
      'eval/kid', 'eval/kid_std', 'eval/num_samples', 'eval/reference', 'eval/g_statistics'}
  record = evaluate.evaluate_run(tmp_path, 20, 'test', batch_size=10,
                                 metric_names=['recognisability'])
  assert 'eval/recognisable' in record and 'eval/fid' not in record and 'eval/kid' not in record


def test_a_conditional_run_is_scored_per_class(tiny_cifar_dir, tmp_path, fid_cache):
  """During training: class-balanced samples, the classifier's confusion matrix against
  the classes asked for, intra-FID against each class's reference images, and
  confusion.png drawn from the last such record."""
  from configs import recap
  config = recap.get_config('conditional,smoke')
  config.data.dir = str(tiny_cifar_dir)
  config.log.progress_bar = False
  config.eval.every = '2 epochs'
  config.eval.num_samples = 40
  config.eval.reference_split = 'train'  # 120 images: at least 6 a class for intra-FID.
  config.eval.batch_size = 10
  assert 'per_class' in config.eval.metrics
  loop.train_and_evaluate(config, tmp_path)
  record = [r for r in map(json.loads, (tmp_path / 'metrics.jsonl').read_text().splitlines())
            if 'eval/num_samples' in r][-1]
  confusion = np.array(record['eval/confusion'])
  assert confusion.shape == (10, 10) and confusion.sum(axis=1).tolist() == [4] * 10  # Balanced.
  assert record['eval/class_accuracy'] == np.trace(confusion) / 40
  np.testing.assert_allclose(record['eval/class_accuracy_per_class'], np.diag(confusion) / 4)
  assert len(record['eval/intra_fid_per_class']) == 10
  assert all(np.isfinite(f) and f > 0 for f in record['eval/intra_fid_per_class'])
  np.testing.assert_allclose(record['eval/intra_fid'], np.mean(record['eval/intra_fid_per_class']))
  assert np.isfinite(record['eval/fid']) and (tmp_path / 'confusion.png').exists()
