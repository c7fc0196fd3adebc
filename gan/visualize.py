"""Pictures of a run: sample grids (PNG), the progress GIF and the training curves.

Leaf module: it reads arrays and files and knows nothing of models or training.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import imageio.v3 as iio
import matplotlib

matplotlib.use('Agg')  # Headless: runs write files, never open windows.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from gan import atomic  # noqa: E402


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] float -> [0, 255] uint8, rounded: the quantisation FID uses too."""
  return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, rows: int, pad: int = 2) -> np.ndarray:
  """[N, H, W, C] uint8 -> one [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image, white gaps."""
  n, h, w, c = images.shape
  cols = -(-n // rows)
  canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
  for i, image in enumerate(images):
    r, q = divmod(i, cols)
    canvas[pad + r * (h + pad):pad + r * (h + pad) + h,
           pad + q * (w + pad):pad + q * (w + pad) + w] = image
  return canvas


def grid_labels(rows: int, cols: int, num_classes: int, conditional: bool,
                fixed_class: int | None = None) -> np.ndarray | None:
  """Labels of a rows x cols grid, row-major: None for an unconditional run, all
  `fixed_class`, or one class per row (row r is class r % num_classes)."""
  if not conditional:
    return None
  if fixed_class is not None:
    return np.full(rows * cols, fixed_class, np.int32)
  return np.repeat(np.arange(rows, dtype=np.int32) % num_classes, cols)


def name_rows(grid_image: np.ndarray, names: list[str], image_size: int, pad: int = 2
              ) -> np.ndarray:
  """The grid with a white margin on its left holding each row's name."""
  width = 8 + 7 * max(len(n) for n in names)
  canvas = Image.new('RGB', (grid_image.shape[1] + width, grid_image.shape[0]), 'white')
  canvas.paste(Image.fromarray(grid_image), (width, 0))
  draw = ImageDraw.Draw(canvas)
  for r, name in enumerate(names):
    draw.text((4, pad + r * (image_size + pad) + image_size // 2 - 6), name, fill='black')
  return np.asarray(canvas)


def grid_path(workdir: str | Path, step: int) -> Path:
  """Where the fixed-noise grid made after `step` steps goes: samples/step_XXXXXXXX.png."""
  return Path(workdir) / 'samples' / f'step_{step:08d}.png'


def grid_files(workdir: str | Path) -> list[tuple[int, Path]]:
  """(step, path) of the run's grids, in step order."""
  paths = Path(workdir).glob('samples/step_*.png')
  return sorted((int(p.stem.split('_')[1]), p) for p in paths)


def named_grid(images: np.ndarray, rows: int,
               row_names: Sequence[str] | None = None) -> np.ndarray:
  """`grid` of uint8 images, each row's name beside it when given (a conditional run's
  classes)."""
  picture = grid(images, rows)
  return picture if row_names is None else name_rows(picture, list(row_names), images.shape[1])


def save_grid(images: np.ndarray, path: str | Path, rows: int,
              row_names: Sequence[str] | None = None) -> None:
  """Saves [N, H, W, 3] images in [-1, 1] as a PNG `named_grid` with `rows` rows."""
  picture = named_grid(to_uint8(images), rows, row_names)
  with atomic.replacing(path) as temporary:
    iio.imwrite(temporary, picture)


def _labelled_frame(path: Path, label: str, scale: int) -> np.ndarray:
  image = Image.open(path).convert('RGB')
  image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
  frame = Image.new('RGB', (image.width, image.height + 16), 'white')
  frame.paste(image, (0, 16))
  ImageDraw.Draw(frame).text((4, 2), label, fill='black')
  return np.asarray(frame)


def make_gif(frames: Sequence[tuple[str, Path]], path: str | Path, fps: float,
             scale: int = 2) -> None:
  """GIF of (label, png path) frames, each label drawn above its picture; the last frame
  is held three times as long so the final quality is visible."""
  if not frames:
    raise ValueError('make_gif needs at least one frame.')
  images = [_labelled_frame(Path(p), label, scale) for label, p in frames]
  durations = [1000 / fps] * len(images)
  durations[-1] *= 3
  # Pillow takes a list of durations for several frames only.
  with atomic.replacing(path) as temporary:
    iio.imwrite(temporary, np.stack(images),
                duration=durations if len(images) > 1 else durations[0], loop=0)


def read_metrics(path: str | Path) -> list[dict]:
  """The JSON lines of a metrics file, in order (without a last line a kill cut short)."""
  return atomic.read_json_lines(path)[1]


def smooth(values: np.ndarray, factor: float) -> np.ndarray:
  """Bias-corrected exponential moving average (TensorBoard's smoothing)."""
  out, avg = np.empty(len(values)), 0.0
  for i, v in enumerate(values):
    avg = factor * avg + (1 - factor) * v
    out[i] = avg / (1 - factor ** (i + 1))
  return out


def plot_curves(records: Sequence[dict], path: str | Path, smoothing: float) -> None:
  """curves.png: G and D loss, D's accuracy on real and fake images, and (when the run
  logged any) FID and KID, against epoch.

  Raw values are drawn faint, their smoothed trend solid; the dashed line at 0.5 is where
  D's accuracy on fakes sits once it cannot tell them from real images.
  """
  steps = [r for r in records if 'G/loss' in r]
  if not steps:
    raise ValueError(f'No training steps to plot in {path}.')
  epoch = np.array([r['epoch'] for r in steps])
  evals = [r for r in records if 'eval/fid' in r or 'eval/kid' in r]
  fig, axes = plt.subplots(1, 3 if evals else 2, figsize=(18 if evals else 12, 4.2))
  ax_loss, ax_acc = axes[:2]
  for key, color in (('G/loss', 'tab:blue'), ('D/loss', 'tab:red')):
    values = np.array([r[key] for r in steps])
    ax_loss.plot(epoch, values, color=color, alpha=0.25, linewidth=0.7)
    ax_loss.plot(epoch, smooth(values, smoothing), color=color, label=key)
  ax_loss.set(xlabel='epoch', ylabel='loss', title='Losses')
  ax_loss.legend()
  for key, color in (('D/acc_real', 'tab:green'), ('D/acc_fake', 'tab:purple')):
    values = np.array([r[key] for r in steps])
    ax_acc.plot(epoch, values, color=color, alpha=0.25, linewidth=0.7)
    ax_acc.plot(epoch, smooth(values, smoothing), color=color, label=f'{key} (trend)')
  ax_acc.axhline(0.5, color='black', linestyle='--', linewidth=1, label='0.5')
  ax_acc.set(xlabel='epoch', ylabel='accuracy', ylim=(-0.02, 1.02),
             title='D accuracy (probability > 0.5 means "real")')
  ax_acc.legend(loc='lower left')
  if evals:  # Each of FID and KID that the run measured.
    ax_fid = axes[2]
    ax_fid.set(xlabel='epoch', title=f'FID / KID ({evals[-1]["eval/num_samples"]} samples vs '
               f'{evals[-1]["eval/reference"]})')
    for key, label, axis, marker, color, where in (
        ('eval/fid', 'FID', ax_fid, 'o', 'tab:orange', 'upper right'),
        ('eval/kid', 'KID', ax_fid.twinx(), 's', 'tab:gray', 'upper center')):
      measured = [r for r in evals if key in r]
      if measured:
        axis.plot([r['epoch'] for r in measured], [r[key] for r in measured], marker=marker,
                  color=color, label=label)
        axis.set_ylabel(label)
        axis.legend(loc=where)
  for ax in axes:
    ax.grid(alpha=0.3)
  fig.tight_layout()
  with atomic.replacing(path) as temporary:
    fig.savefig(temporary, dpi=100)
  plt.close(fig)


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str],
                   path: str | Path, title: str = '') -> None:
  """The confusion matrix of a conditional G's samples as a picture: row a, column p is
  the share of samples asked for class a that the classifier calls p (rows sum to 1)."""
  counts = np.asarray(confusion, np.float64)
  shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
  size = len(class_names)
  fig, ax = plt.subplots(figsize=(1.0 + 0.55 * size, 0.8 + 0.5 * size))
  image = ax.imshow(shares, cmap='Blues', vmin=0, vmax=1)
  for a in range(size):
    for p in range(size):
      ax.text(p, a, f'{shares[a, p]:.2f}'.lstrip('0'), ha='center', va='center', fontsize=7,
              color='white' if shares[a, p] > 0.5 else 'black')
  ax.set_xticks(range(size), class_names, rotation=45, ha='right')
  ax.set_yticks(range(size), class_names)
  ax.set(xlabel='class the classifier sees', ylabel='class asked for',
         title=title or f'samples per class: accuracy {np.trace(counts) / counts.sum():.1%}')
  fig.colorbar(image, ax=ax, fraction=0.046)
  fig.tight_layout()
  with atomic.replacing(path) as temporary:
    fig.savefig(temporary, dpi=100)
  plt.close(fig)


def write_summaries(workdir: str | Path, gif_fps: float, curve_smoothing: float,
                    label_of: Callable[[int], str],
                    class_names: Sequence[str] | None = None) -> None:
  """progress.gif and curves.png from the grids and metrics the run wrote so far, and
  confusion.png from its last per-class evaluation (given the `class_names`); each GIF
  frame is labelled `label_of(step)`."""
  workdir = Path(workdir)
  grids = grid_files(workdir)
  if grids:
    make_gif([(label_of(step), path) for step, path in grids], workdir / 'progress.gif',
             fps=gif_fps)
  records = read_metrics(workdir / 'metrics.jsonl') if (workdir / 'metrics.jsonl').exists() else []
  if any('G/loss' in r for r in records):
    plot_curves(records, workdir / 'curves.png', curve_smoothing)
  per_class = [r for r in records if 'eval/confusion' in r]
  if per_class and class_names:
    plot_confusion(per_class[-1]['eval/confusion'], class_names, workdir / 'confusion.png',
                   f'step {per_class[-1]["step"]}: samples asked for a class, '
                   f'accuracy {per_class[-1]["eval/class_accuracy"]:.1%}')
