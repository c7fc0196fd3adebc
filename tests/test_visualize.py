"""Grids, GIF and curves from known inputs."""

import imageio.v3 as iio
import numpy as np

from gan import visualize


def test_to_uint8_rounds_and_clips():
  np.testing.assert_array_equal(visualize.to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 2.0])),
                                [0, 0, 128, 255, 255])


def test_grid_places_images_row_major():
  images = np.stack([np.full((2, 2, 3), i * 10, np.uint8) for i in range(6)])
  canvas = visualize.grid(images, rows=2, pad=1)
  assert canvas.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
  assert canvas[1, 1, 0] == 0 and canvas[1, 4, 0] == 10 and canvas[4, 1, 0] == 30
  assert canvas[0, 0, 0] == 255  # Gaps are white.


def test_gif_has_one_labelled_frame_per_grid(tmp_path):
  paths = []
  for i in range(3):
    path = visualize.grid_path(tmp_path, 10 * i)
    path.parent.mkdir(exist_ok=True)
    visualize.save_grid(np.full((4, 8, 8, 3), i / 3 - 0.5), path, rows=2)
    paths.append((f'step {10 * i}', path))
  assert visualize.grid_files(tmp_path) == [(10 * i, path) for i, (_, path) in enumerate(paths)]
  visualize.make_gif(paths, tmp_path / 'progress.gif', fps=4)
  frames = iio.imread(tmp_path / 'progress.gif', index=None)
  assert frames.shape[0] == 3
  grid_h = 2 * 10 + 2
  assert frames.shape[1] == 2 * grid_h + 16  # Scaled x2, a 16 px label strip on top.
  assert (frames[0, :16] < 128).any()  # The label is drawn.


def test_smooth_is_a_bias_corrected_average():
  np.testing.assert_allclose(visualize.smooth(np.full(5, 3.0), 0.9), np.full(5, 3.0))
  values = np.array([0.0, 1.0])
  np.testing.assert_allclose(visualize.smooth(values, 0.5), [0.0, (0.5 * 1) / 0.75])


def test_curves_plot_from_records(tmp_path):
  records = [{'step': s, 'epoch': s / 10, 'G/loss': 1.0, 'D/loss': 1.3, 'D/acc_real': 0.6,
              'D/acc_fake': 0.5} for s in range(1, 30)]
  visualize.plot_curves(records, tmp_path / 'curves.png', smoothing=0.9)
  assert iio.imread(tmp_path / 'curves.png').shape[0] > 100
