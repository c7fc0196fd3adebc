"""The recognisability classifier: augmentation, scores, training, the shipped weights."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import data
from gan.metrics import classifier
from gan.metrics.recognisability import recognisability


def _images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_recognisability_counts_confident_images_and_class_coverage():
  probs = np.array([[0.95, 0.05, 0.0], [0.5, 0.5, 0.0], [0.0, 0.08, 0.92], [0.1, 0.0, 0.9]])
  result = recognisability(probs)
  assert result['recognisable'] == 0.75  # 0.95, 0.92 and 0.9 reach the threshold; 0.5 not.
  assert result['class_histogram'] == [2, 0, 2]  # A tie goes to the first class.
  assert result['class_entropy'] == pytest.approx(np.log(2))
  one_class = recognisability(np.tile([0.0, 1.0, 0.0], (5, 1)))
  assert one_class['class_entropy'] == 0 and one_class['recognisable'] == 1


def test_fitted_temperature_recovers_the_one_that_made_the_labels():
  rng = np.random.default_rng(0)
  logits = rng.normal(scale=4.0, size=(20_000, 10))
  for true_t in (0.5, 2.0):
    probs = np.exp(logits / true_t)
    probs /= probs.sum(-1, keepdims=True)
    labels = (probs.cumsum(-1) > rng.uniform(size=(len(probs), 1))).argmax(-1)
    assert classifier.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)


def test_augment_flips_and_translates_within_the_reflected_border():
  images = jnp.asarray(_images(16))
  unshifted = classifier.augment(jax.random.key(0), images, max_shift=0)
  for image, out in zip(np.asarray(images), np.asarray(unshifted)):
    assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
  flipped = [not np.array_equal(o, i) for i, o in zip(np.asarray(images), np.asarray(unshifted))]
  assert 0 < sum(flipped) < 16  # Some flipped, some not.

  shifted = np.asarray(classifier.augment(jax.random.key(1), images, max_shift=2))
  for image, out in zip(np.asarray(images), shifted):
    candidates = [np.pad(im, ((2, 2), (2, 2), (0, 0)), mode='reflect')[dy:dy + 32, dx:dx + 32]
                  for im in (image, image[:, ::-1]) for dy in range(5) for dx in range(5)]
    assert any(np.array_equal(out, c) for c in candidates)


def test_recogniser_checks_its_input_and_pads_the_last_batch():
  model = classifier.Classifier(widths=(8, 8, 8))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8))
  recogniser = classifier.Recogniser(model, variables, batch_size=4)
  images = _images(6)
  probs = recogniser.probabilities(images)
  assert probs.shape == (6, 10)
  np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
  # Batching does not change the answer; the mirror image gets the same (flip-averaged) one.
  np.testing.assert_allclose(probs, classifier.Recogniser(model, variables, 6).probabilities(images),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(recogniser.probabilities(images[:, :, ::-1].copy()), probs,
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='Expected uint8 images'):
    recogniser.probabilities(images.astype(np.float32))
  hot = classifier.Recogniser(model, variables, batch_size=4, temperature=0.25)
  expected = np.exp(recogniser.logits(images) / 0.25)
  np.testing.assert_allclose(hot.probabilities(images), expected / expected.sum(-1, keepdims=True),
                             rtol=1e-6)


def test_train_save_load_round_trip(tiny_cifar_dir, tmp_path):
  model, variables, record = classifier.train(epochs=1, batch_size=24,
                                              data_dir=str(tiny_cifar_dir))
  assert 0 <= record['test_accuracy'] <= 1 and record['parameters'] > 1e6
  assert record['temperature'] > 0 and 0 <= record['test_recognisable'] <= 1
  path = tmp_path / 'weights.npz'
  classifier.save(variables, record, path)
  loaded = classifier.load(path)
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.tree.map(np.asarray, variables))
  assert json.loads(path.with_suffix('.json').read_text())['epochs'] == 1
  with pytest.raises(FileNotFoundError, match='python -m gan.metrics.classifier train'):
    classifier.load(tmp_path / 'missing.npz')


def test_shipped_weights_are_small_and_as_accurate_as_recorded():
  assert classifier.WEIGHTS.stat().st_size <= 4 * 2**20
  record = json.loads(classifier.WEIGHTS.with_suffix('.json').read_text())
  assert record['test_accuracy'] >= 0.90
  if not os.environ.get(data.ENV_DIR):
    pytest.skip(f'${data.ENV_DIR} (the real CIFAR-10) not set')
  images, labels = data.load_split('test')
  measured = classifier.evaluate_on(classifier.Classifier(), classifier.load(), images, labels)
  assert measured['test_accuracy'] == pytest.approx(record['test_accuracy'], abs=1e-4)
  assert measured['temperature'] == pytest.approx(record['temperature'], rel=1e-3)
  assert measured['test_recognisable'] == pytest.approx(record['test_recognisable'], abs=1e-3)
