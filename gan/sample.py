r"""Images from a trained G: a grid, image sets for other tools, latent interpolations.

  python -m gan.sample --workdir runs/recap                         # <workdir>/sampled/grid.png
  python -m gan.sample --pretrained cpu_dcgan --interpolate 5       # shipped: sampled/cpu_dcgan/
  python -m gan.sample --workdir runs/recap --num 10000             # + samples.npz
  python -m gan.sample --workdir runs/recap --num 100 --png         # + png/000000.png ...
  python -m gan.sample --workdir runs/recap --interpolate 5         # + interpolation.gif
  python -m gan.sample --workdir RUN --class horse --truncation 1.0 --seed 7 --step 3900

G is the run's latest checkpoint (or the kept one of `--step`), sampled as `gan.sampling`
sets it: its EMA when the run keeps one, its BatchNorm as the run's `eval.g_statistics`
(or `--g_statistics`) says; or a G shipped with the package (`--pretrained`,
`gan.pretrained`: no data, no run folder). Every draw comes from `--seed` (one named stream per
use: 'grid', 'images', 'interpolation'), so the same seed and checkpoint give the same
pictures bit for bit. Outputs go to `--out` (default `<workdir>/sampled`):

  grid.png            grid_size x grid_size samples; for a conditional run one row per
                      class, its name beside it (or every cell of `--class`);
  samples.npz         `--num` images as uint8 `images` [N, H, W, 3] (and int32 `labels`
                      for a conditional run, class-balanced unless `--class`): what
                      `python -m gan.metrics.fid` and other tools read;
  png/NNNNNN.png      the same images one file each, with `--png` (e.g. for torch-fidelity);
  interpolation.gif   spherical interpolation through `--interpolate` latent keyframes
                      (each a grid of independent tracks), back to the first.

`--truncation T` draws z from N(0, I) truncated to |z_i| <= T (BigGAN's truncation trick:
fidelity for variety; 0 keeps the full normal).
"""

import argparse
import sys
from pathlib import Path

import imageio.v3 as iio
import jax
import ml_collections
import numpy as np

from gan import data, evaluate, pretrained, streams, visualize
from gan.sampling import STATISTICS, Sampling

FRAMES_PER_SEGMENT = 12  # Interpolation frames between two keyframes.


class SampleError(ValueError):
  """A request the run cannot serve (unknown class, a class of an unconditional run...)."""


def latents(key: jax.Array, num: int, latent_dim: int, truncation: float = 0.0) -> np.ndarray:
  """z [num, latent_dim] from N(0, I), truncated to [-truncation, truncation] when > 0."""
  if truncation < 0:
    raise SampleError(f'--truncation={truncation}: give a positive threshold, or 0 for none.')
  if truncation:
    return np.asarray(jax.random.truncated_normal(key, -truncation, truncation,
                                                  (num, latent_dim)))
  return np.asarray(jax.random.normal(key, (num, latent_dim)))


def class_index(name_or_index: str, class_names: tuple[str, ...], conditional: bool) -> int:
  """The class `--class` names (a name or an index), checked against the run."""
  if not conditional:
    raise SampleError(f'--class {name_or_index}: this run is unconditional (its G takes no '
                      f'labels); sample it without --class.')
  if name_or_index.isdigit() and int(name_or_index) < len(class_names):
    return int(name_or_index)
  if name_or_index in class_names:
    return class_names.index(name_or_index)
  raise SampleError(f'--class {name_or_index}: not a class of this run; use one of '
                    f'{list(class_names)} or an index 0-{len(class_names) - 1}.')


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
  """Spherical interpolation from a (t = 0) to b (t = 1), row by row: a Gaussian latent's
  norm stays typical along the way, where a straight line would pass near the origin."""
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  omega = np.arccos(np.clip(np.sum(unit(a) * unit(b), axis=-1, keepdims=True), -1, 1))
  so = np.sin(omega)
  safe = np.where(so < 1e-6, 1.0, so)  # Parallel rows: a straight line is the same path.
  spherical = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / safe
  return np.where(so < 1e-6, (1 - t) * a + t * b, spherical).astype(a.dtype)


class Sampler:
  """G at one checkpoint (or shipped), and the draws of one seed."""

  def __init__(self, config: ml_collections.ConfigDict, networks, variables: dict, step: int,
               seed: int = 0, truncation: float = 0.0, batch_size: int = 100):
    self.config, self.networks, self.variables, self.step = config, networks, variables, step
    self.sampling = Sampling(config, networks)
    self.key = jax.random.PRNGKey(seed)
    self.truncation = truncation
    self.batch_size = batch_size
    self.class_names = data.dataset_spec(config.data).class_names
    self._sample = self.sampling.sharded_sampler()

  @classmethod
  def of_run(cls, workdir: Path, step: int | None = None, seed: int = 0,
             truncation: float = 0.0, batch_size: int = 100, g_statistics: str = '') -> 'Sampler':
    """G of the run in `workdir` at its latest checkpoint (or that of `step`), its
    statistics as the run's `eval.g_statistics` (or `g_statistics`) says."""
    config, networks, state = evaluate.load_run(Path(workdir), step)
    config.eval.g_statistics = g_statistics or config.eval.g_statistics
    variables = Sampling(config, networks).variables(state)
    return cls(config, networks, variables, int(state.step), seed, truncation, batch_size)

  @classmethod
  def of_pretrained(cls, name: str, seed: int = 0, truncation: float = 0.0,
                    batch_size: int = 100) -> 'Sampler':
    """A G shipped with the package (`gan.pretrained`), or exported to an .npz path."""
    config, networks, variables, record = pretrained.load(name)
    return cls(config, networks, variables, record['step'], seed, truncation, batch_size)

  @property
  def conditional(self) -> bool:
    return self.networks.conditional

  def z(self, stream: str, num: int) -> np.ndarray:
    return latents(streams.named(self.key, stream), num, self.networks.spec.latent_dim,
                   self.truncation)

  def images(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    return evaluate.generate_uint8(self._sample, self.variables, z, labels, self.batch_size)

  def grid(self, size: int, fixed_class: int | None = None) -> np.ndarray:
    labels = visualize.grid_labels(size, size, len(self.class_names), self.conditional, fixed_class)
    names = None
    if labels is not None and fixed_class is None:  # One class a row: name the rows.
      names = [self.class_names[c] for c in labels[::size]]
    return visualize.named_grid(self.images(self.z('grid', size * size), labels), size, names)

  def image_set(self, num: int, fixed_class: int | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    labels = None
    if self.conditional:
      labels = (np.full(num, fixed_class, np.int32) if fixed_class is not None
                else np.asarray(self.networks.balanced_labels(num)))
    return self.images(self.z('images', num), labels), labels

  def interpolation(self, keyframes: int, size: int, fixed_class: int | None = None
                    ) -> list[np.ndarray]:
    """Grid frames through `keyframes` latent grids and back to the first."""
    tracks = size * size
    points = self.z('interpolation', keyframes * tracks).reshape(keyframes, tracks, -1)
    labels = visualize.grid_labels(size, size, len(self.class_names), self.conditional, fixed_class)
    frames = []
    for k in range(keyframes):
      a, b = points[k], points[(k + 1) % keyframes]
      z = np.concatenate([slerp(a, b, i / FRAMES_PER_SEGMENT)
                          for i in range(FRAMES_PER_SEGMENT)])
      every = None if labels is None else np.tile(labels, FRAMES_PER_SEGMENT)
      images = self.images(z, every).reshape(FRAMES_PER_SEGMENT, tracks,
                                             *self.networks.spec.image_shape)
      frames += [visualize.grid(frame, size) for frame in images]
    return frames


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--workdir', type=Path, help='a run folder (train.py --workdir)')
  source.add_argument('--pretrained', metavar='NAME',
                      help=f'a G shipped with the package: {pretrained.available()} (or '
                           f'the path of one exported by python -m gan.pretrained)')
  parser.add_argument('--out', type=Path, default=None,
                      help='output folder (default: <workdir>/sampled, or sampled/<NAME>)')
  parser.add_argument('--step', type=int, default=None,
                      help='a kept checkpoint (default: the latest)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--grid_size', '--grid-size', type=int, default=8)
  parser.add_argument('--num', type=int, default=0, help='images to write to samples.npz')
  parser.add_argument('--png', action='store_true', help='also write them one PNG each')
  parser.add_argument('--interpolate', type=int, default=0,
                      help='latent keyframes of interpolation.gif (at least 2; 0: none)')
  parser.add_argument('--fps', type=float, default=12)
  parser.add_argument('--truncation', type=float, default=0.0)
  parser.add_argument('--class', dest='class_name', default=None,
                      help='a class name or index (conditional runs only)')
  parser.add_argument('--batch_size', '--batch-size', type=int, default=100)
  parser.add_argument('--g_statistics', '--g-statistics', choices=STATISTICS, default='',
                      help="how G's BatchNorm is set (default: the run's eval.g_statistics)")
  args = parser.parse_args(argv)
  for name, value, least in (('--num', args.num, 0), ('--grid_size', args.grid_size, 1),
                             ('--batch_size', args.batch_size, 1),
                             ('--interpolate', args.interpolate, 0)):
    if value < least:
      parser.error(f'{name}={value}: give at least {least}.')
  if args.interpolate == 1:
    parser.error('--interpolate=1: an interpolation needs at least 2 keyframes.')
  if args.png and not args.num:
    parser.error('--png writes the --num images: give --num too.')
  try:
    latents(jax.random.PRNGKey(0), 1, 1, args.truncation)  # Checks the threshold first.
    if args.pretrained:
      if args.step is not None or args.g_statistics:
        raise SampleError('--step and --g_statistics choose within a run: a shipped G is '
                          'one step with its statistics.')
      sampler = Sampler.of_pretrained(args.pretrained, args.seed, args.truncation,
                                      args.batch_size)
    else:
      sampler = Sampler.of_run(args.workdir, args.step, args.seed, args.truncation,
                               args.batch_size, args.g_statistics)
    fixed = (None if args.class_name is None else
             class_index(args.class_name, sampler.class_names, sampler.conditional))
  except (FileNotFoundError, SampleError) as error:
    parser.error(str(error))
  source = args.workdir or f'pretrained {args.pretrained}'
  out = args.out or (args.workdir / 'sampled' if args.workdir else
                     Path('sampled') / Path(args.pretrained).stem)
  out.mkdir(parents=True, exist_ok=True)
  written = [out / 'grid.png']
  iio.imwrite(written[0], sampler.grid(args.grid_size, fixed))
  if args.num:
    images, labels = sampler.image_set(args.num, fixed)
    arrays = {'images': images} if labels is None else {'images': images, 'labels': labels}
    np.savez(out / 'samples.npz', **arrays)
    written.append(out / 'samples.npz')
    if args.png:
      (out / 'png').mkdir(exist_ok=True)
      for i, image in enumerate(images):
        iio.imwrite(out / 'png' / f'{i:06d}.png', image)
      written.append(out / 'png')
  if args.interpolate:
    frames = sampler.interpolation(args.interpolate, args.grid_size, fixed)
    iio.imwrite(out / 'interpolation.gif', np.stack(frames), duration=1000 / args.fps, loop=0)
    written.append(out / 'interpolation.gif')
  print(f'step {sampler.step} of {source} (seed {args.seed}): ' +
        ', '.join(str(p) for p in written))


if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()
  main(sys.argv[1:])
