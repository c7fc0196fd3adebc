"""The training loop: resume, steps, and the periodic hooks (metrics, samples, checkpoints).

`train_and_evaluate(config, workdir)` is all `train.py` calls. A run leaves in `workdir`:

  config.json            the resolved config of the latest invocation
  metrics.jsonl          one line per step: step, epoch, kimg, losses, accuracies, img/s
  tensorboard/           the same scalars as TensorBoard events
  samples/epoch_XXXX.png fixed-noise grids, at epoch 0 and after every epoch
  progress.gif           those grids in order, the epoch drawn on each frame
  curves.png             G/D losses and D's real/fake accuracy against epoch
  checkpoints/           orbax checkpoints of the whole GANState

Resume: rerunning the same command restores the latest checkpoint and continues at its
step; batch order and noise are functions of (seed, step), so the result equals an
uninterrupted run. SIGTERM or Ctrl-C stops after the current call (`train.steps_per_call`
steps) and saves a checkpoint; the resumed run then makes the same calls, bit for bit the
same run. (A `stop_at_step` inside a call, or another `steps_per_call`, makes other calls
of the same steps: equal to float rounding.) A non-finite loss or gradient norm stops the
run naming the step, before any checkpoint of the bad state is written.
"""

import json
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan import checkpoint, data, logs, models, steps, visualize
from gan.state import GANState, create_state, rng_streams, sampling_variables
from gan.validation import validate_config


class NonFiniteError(FloatingPointError):
  """A loss or gradient norm stopped being finite."""


def make_mesh() -> Mesh:
  """A 1-D mesh over every device: the batch is split over its 'data' axis."""
  return Mesh(np.array(jax.devices()), ('data',))


def _record_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
  """Writes config.json; says loudly when it replaces a different stored config."""
  path = workdir / 'config.json'
  current = json.loads(config.to_json_best_effort())
  if path.exists():
    stored = json.loads(path.read_text())
    changed = sorted(_diff_keys(stored, current))
    if changed:
      print(f'WARNING: {path} holds a different config; using the one given now. '
            f'Changed: {", ".join(changed)}', flush=True)
  path.write_text(json.dumps(current, indent=2, sort_keys=True) + '\n')


def _diff_keys(a: dict, b: dict, prefix: str = '') -> list[str]:
  keys = []
  for key in sorted(set(a) | set(b)):
    if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
      keys += _diff_keys(a[key], b[key], f'{prefix}{key}.')
    elif a.get(key) != b.get(key):
      keys.append(prefix + key)
  return keys


class _MetricBuffer:
  """Holds the device metrics of calls of k steps and writes them, a line a step, at a
  host sync.

  Fetching every call would stall the device queue; buffering keeps dispatch
  asynchronous and still logs every step.
  """

  def __init__(self, writer: logs.MetricWriter, batch_size: int, steps_per_epoch: int):
    self._writer = writer
    self._batch_size = batch_size
    self._steps_per_epoch = steps_per_epoch
    self._pending: list[tuple[int, dict]] = []
    self._window_start = time.perf_counter()
    self.last: dict = {}

  def add(self, first_step: int, metrics: dict) -> None:
    """`metrics` of steps first_step, first_step + 1, ..., each stacked on axis 0."""
    self._pending.append((first_step, metrics))

  def restart_clock(self) -> None:
    self._window_start = time.perf_counter()

  def flush(self) -> None:
    """Writes the buffered steps; raises NonFiniteError at the first bad one."""
    if not self._pending:
      return
    fetched = jax.device_get([m for _, m in self._pending])
    now = time.perf_counter()
    records = [(first + i, {k: v[i] for k, v in metrics.items()})
               for (first, _), metrics in zip(self._pending, fetched)
               for i in range(len(next(iter(metrics.values()))))]
    img_per_sec = len(records) * self._batch_size / max(now - self._window_start, 1e-9)
    self._window_start = now
    for step, metrics in records:
      bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
      if bad:
        self._pending = []
        self._writer.flush()
        raise NonFiniteError(
            f'Non-finite {", ".join(bad)} at step {step} '
            f'({ {k: float(metrics[k]) for k in bad} }); stopping. The last checkpoint '
            f'was written before this step and is intact.')
      record = {'step': step, 'epoch': step / self._steps_per_epoch,
                'kimg': step * self._batch_size / 1000,
                **{k: float(v) for k, v in metrics.items()},
                'img_per_sec': img_per_sec}
      self._writer.write(record)
      self.last = record
    self._pending = []
    self._writer.flush()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       stop_at_step: int | None = None) -> GANState:
  """Trains (or resumes) the run in `workdir`; returns the final state.

  `stop_at_step` ends this invocation after that global step, with a checkpoint, as a
  SIGTERM would (for notebooks with session limits); rerunning continues from there.
  """
  mesh = make_mesh()
  validate_config(config, num_devices=mesh.size)
  workdir = Path(workdir)
  (workdir / 'samples').mkdir(parents=True, exist_ok=True)

  images, _ = data.load(config.data)
  batch_size = config.train.batch_size
  steps_per_epoch = len(images) // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'{len(images)} examples make no batch of train.batch_size={batch_size}.')
  total_steps = config.train.num_epochs * steps_per_epoch

  generator, discriminator = models.build_models(config)
  state = jax.jit(lambda: create_state(config, generator, discriminator),
                  out_shardings=steps.replicated(mesh))()
  checkpointer = checkpoint.Checkpointer(workdir / 'checkpoints', config.checkpoint.max_to_keep)
  restored = checkpointer.restore_latest(state)
  if restored is not None:
    state = restored
  step = int(state.step)
  if step > total_steps:
    raise ValueError(f'The checkpoint in {workdir} is at step {step}, past the '
                     f'{total_steps} steps of train.num_epochs={config.train.num_epochs}.')
  print(f'{"Resuming at" if step else "Starting"} step {step}/{total_steps} '
        f'({steps_per_epoch} steps an epoch, batch {batch_size} over {mesh.size} '
        f'{jax.devices()[0].platform} device(s)) in {workdir}', flush=True)
  _record_config(config, workdir)

  train_steps = steps.make_train_steps(config, generator, discriminator, mesh)
  step_inputs = _step_inputs(config, images, mesh)
  steps_per_call = config.train.steps_per_call
  sample = _sampler(config, generator)
  grid_rows = config.eval.grid_size

  def save_samples(epoch: int) -> None:
    visualize.save_grid(sample(sampling_variables(state)),
                        workdir / 'samples' / f'epoch_{epoch:04d}.png', grid_rows)

  if step == 0:
    save_samples(0)
  evaluate = None
  if config.eval.every_epochs:
    from gan.evaluate import Evaluator, format_record  # The FID Inception only when asked for.
    evaluator = Evaluator(config, generator, config.eval.reference_split,
                          config.eval.batch_size, config.eval.inception_logits)

    def evaluate(epoch: int) -> None:
      record = {'step': step, 'epoch': float(epoch), 'kimg': step * batch_size / 1000,
                **evaluator(sampling_variables(state), config.eval.num_samples)}
      writer.write(record)
      writer.flush()
      print(f'\nepoch {epoch}: {format_record(record)}', flush=True)

  writer = logs.MetricWriter(workdir, resume_step=step, tensorboard=config.log.tensorboard)
  buffer = _MetricBuffer(writer, batch_size, steps_per_epoch)
  bar = logs.progress_bar(total_steps, step, config.log.progress_bar)
  last_step = total_steps if stop_at_step is None else min(stop_at_step, total_steps)
  compiled: set[int] = set()  # The k of each call compiled so far.
  try:
    with checkpoint.StopRequest() as stop:
      while step < last_step and not stop.requested:
        epoch, position = divmod(step, steps_per_epoch)
        order = data.epoch_permutation(config.seed, epoch, len(images))
        while position < steps_per_epoch and step < last_step and not stop.requested:
          # Calls of k steps start at multiples of k into the epoch and never cross its
          # end, so a run compiles one program, plus one for the epoch's remainder when
          # k does not divide the steps of an epoch.
          k = min(steps_per_call - position % steps_per_call, steps_per_epoch - position,
                  last_step - step)
          indices = order[position * batch_size:(position + k) * batch_size]
          compiles = k not in compiled
          if compiles:
            buffer.flush()  # The window so far is timed without this compilation.
          state, metrics = train_steps(state, *step_inputs(indices.reshape(k, batch_size)))
          buffer.add(step + 1, metrics)
          step, position = step + k, position + k
          if compiles:
            compiled.add(k)
            jax.block_until_ready(metrics)
            buffer.flush()
            buffer.restart_clock()  # img/s of later windows leaves compilation out.
          log_due = step // config.train.log_every_steps > (step - k) // config.train.log_every_steps
          if log_due or position == steps_per_epoch or step == last_step:
            buffer.flush()
            bar.set_postfix_str(_postfix(buffer.last), refresh=False)
          bar.update(k)
        if step % steps_per_epoch == 0:
          epoch = step // steps_per_epoch
          save_samples(epoch)
          if evaluate and (epoch % config.eval.every_epochs == 0 or step == total_steps):
            evaluate(epoch)
          if epoch % config.checkpoint.every_epochs == 0 or step == total_steps:
            checkpointer.save(state)
      buffer.flush()  # Raises on a non-finite step: the bad state is never saved.
      checkpointer.save(state)
      if stop.requested:
        print(f'\nStopped by {stop.requested} at step {step}; checkpoint saved. Rerun the '
              f'same command to resume.', flush=True)
  finally:
    bar.close()
    writer.close()
    checkpointer.close()

  write_summaries(workdir, config)
  return state


def _postfix(record: dict) -> str:
  if not record:
    return ''
  return (f'epoch {record["epoch"]:.2f} G {record["G/loss"]:.3f} D {record["D/loss"]:.3f} '
          f'acc r/f {record["D/acc_real"]:.2f}/{record["D/acc_fake"]:.2f} '
          f'{record["img_per_sec"]:.0f} img/s')


def write_summaries(workdir: Path, config: ml_collections.ConfigDict) -> None:
  """progress.gif and curves.png from the grids and metrics the run wrote so far."""
  grids = sorted((workdir / 'samples').glob('epoch_*.png'))
  visualize.make_gif([(f'epoch {int(p.stem.split("_")[1])}', p) for p in grids],
                     workdir / 'progress.gif', fps=config.eval.gif_fps)
  records = visualize.read_metrics(workdir / 'metrics.jsonl')
  if records:
    visualize.plot_curves(records, workdir / 'curves.png', config.eval.curve_smoothing)


def _step_inputs(config: ml_collections.ConfigDict, images: np.ndarray, mesh: Mesh):
  """indices [k, B] -> the (dataset, indices or batches) arguments of a call of k steps.

  With `data.on_device` the uint8 dataset is copied to the devices once and each call
  gathers its batches there; otherwise the host gathers them and copies them over.
  """
  sharding = NamedSharding(mesh, P(None, 'data'))
  if config.data.on_device:
    on_device = jax.device_put(images, steps.replicated(mesh))
    return lambda idx: (on_device, jax.device_put(idx.astype(np.int32), sharding))
  return lambda idx: (None, jax.device_put(images[idx], sharding))


def _sampler(config: ml_collections.ConfigDict, generator):
  """G's variables -> the fixed-noise grid samples [grid^2, 32, 32, 3] in [-1, 1], on host."""
  num = config.eval.grid_size ** 2
  noise = jax.random.normal(rng_streams(config.seed)['samples'], (num, config.model.latent_dim))
  generate = models.inference_generator(generator)
  return lambda g: np.asarray(jax.device_get(generate(g, noise)))
