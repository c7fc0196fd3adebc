"""DiffAugment's ops: what each draws is what it does, and gradients reach the images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan import augment
from gan.augment import diffaugment

IMAGES = jax.random.uniform(jax.random.PRNGKey(0), (64, 32, 32, 3), minval=-1, maxval=1)


def test_the_empty_policy_is_the_identity():
  assert augment.make_policy('') is None  # Networks then hands D the images unchanged.
  assert augment.make_policy(' , ') is None


def test_translation_moves_content_by_the_drawn_offsets_with_zero_fill():
  offsets = diffaugment.translation_offsets(jax.random.PRNGKey(1), IMAGES)
  assert int(jnp.abs(offsets).max()) == 4 and offsets.dtype == jnp.int32  # 32 / 8.
  moved = np.asarray(diffaugment.translate(IMAGES, offsets))
  for image, out, (down, right) in zip(np.asarray(IMAGES), moved, np.asarray(offsets)):
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    np.testing.assert_array_equal(out, padded[4 - down:36 - down, 4 - right:36 - right])
  np.testing.assert_array_equal(augment.AUGMENTATIONS['translation'](jax.random.PRNGKey(1), IMAGES),
                                moved)


def test_cutout_zeroes_the_drawn_square_and_nothing_else():
  centres = diffaugment.cutout_centres(jax.random.PRNGKey(2), IMAGES)
  assert int(centres.min()) >= 0 and int(centres.max()) <= 32
  out = np.asarray(diffaugment.cut_out(IMAGES, centres, 16))
  for image, cut, (row, col) in zip(np.asarray(IMAGES), out, np.asarray(centres)):
    mask = np.zeros((32, 32), bool)
    mask[max(row - 8, 0):row + 8, max(col - 8, 0):col + 8] = True
    np.testing.assert_array_equal(cut[mask], 0)
    np.testing.assert_array_equal(cut[~mask], image[~mask])
  np.testing.assert_array_equal(augment.AUGMENTATIONS['cutout'](jax.random.PRNGKey(2), IMAGES),
                                out)


def test_color_changes_brightness_saturation_and_contrast_within_their_ranges():
  out = augment.AUGMENTATIONS['color'](jax.random.PRNGKey(3), IMAGES)
  assert out.shape == IMAGES.shape
  # Brightness shifts each image's mean by at most 0.5; saturation and contrast keep means.
  shift = np.asarray(out.mean(axis=(1, 2, 3)) - IMAGES.mean(axis=(1, 2, 3)))
  assert np.abs(shift).max() <= 0.5 + 1e-5 and np.abs(shift).std() > 0.05
  # A grey image (equal channels) stays grey: saturation scales only colour.
  grey = jnp.repeat(IMAGES[..., :1], 3, axis=-1)
  recoloured = augment.AUGMENTATIONS['color'](jax.random.PRNGKey(3), grey)
  np.testing.assert_allclose(recoloured[..., 0], recoloured[..., 2], atol=1e-6)


@pytest.mark.parametrize('policy', ['color', 'translation', 'cutout', 'color,translation,cutout'])
def test_every_op_passes_gradients_to_its_input(policy):
  apply = augment.make_policy(policy)
  grad = jax.grad(lambda x: jnp.sum(apply(jax.random.PRNGKey(4), x) ** 2))(IMAGES)
  assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
  if policy in ('translation', 'cutout'):  # A selection: gradient 2x where a pixel is kept.
    kept = apply(jax.random.PRNGKey(4), IMAGES) != 0
    np.testing.assert_allclose(np.asarray(grad).sum(), 2 * np.asarray(
        jnp.where(kept, apply(jax.random.PRNGKey(4), IMAGES), 0)).sum(), rtol=1e-4)


def test_a_run_with_diffaugment_and_the_hinge_loss_trains(smoke_config, tmp_path):
  import json

  from gan import loop
  smoke_config.augment.policy = 'color,translation,cutout'
  smoke_config.loss.name = 'hinge'
  smoke_config.train.num_epochs = 1
  loop.train_and_evaluate(smoke_config, tmp_path)
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert len(records) == 6
  assert all(np.isfinite(r['D/loss']) and r['D/loss'] >= 0 for r in records)  # Hinge: >= 0.
