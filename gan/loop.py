"""The training loop: resume, calls of k steps, and the periodic work.

`train_and_evaluate(config, workdir)` is all `train.py` calls. A run leaves in `workdir`:

  config.json                 the resolved config of the latest invocation
  metrics.jsonl               one line per step: step, epoch, kimg, g_steps, d_steps,
                              losses, accuracies, img/s; and the evaluation records
  tensorboard/                the same scalars as TensorBoard events
  samples/step_XXXXXXXX.png   fixed-noise grids, at step 0 and every `eval.samples_every`
  progress.gif                those grids in order, each labelled with its epoch and kimg
  curves.png                  G/D losses and D's real/fake accuracy (and FID) against epoch
  checkpoints/                orbax checkpoints of the whole GANState

Periodic work (grids, evaluation, checkpoints) is scheduled in epochs, kimg or steps
(`gan.schedule`) and done after the call of steps that reaches its time, and at the end.
The log's epoch, kimg, g_steps and d_steps are the step's, counted with the config given
(the state's own counters, `g.step`, `d.step`, `images_shown`, differ only when a run is
resumed with another batch size or n_dis).

Resume: rerunning the same command restores the latest checkpoint and continues at its
step; batch order and noise are functions of (seed, step), so the result equals an
uninterrupted run. SIGTERM or Ctrl-C stops after the current call (`train.steps_per_call`
steps) and saves a checkpoint; the resumed run then makes the same calls, bit for bit the
same run. (A `stop_at_step` inside a call, or another `steps_per_call`, makes other calls
of the same steps: equal to float rounding.) A non-finite loss or gradient norm stops the
run naming the step, before any checkpoint of the bad state is written.
"""

import tempfile
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from gan import atomic, checkpoint, config_files, data, distributed, logs, parallel, schedule
from gan import steps, streams
from gan import stop as stop_request
from gan import visualize
from gan.networks import Networks
from gan.sampling import Sampling
from gan.state import GANState, create_state
from gan.validation import validate_config

NonFiniteError = logs.NonFiniteError


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       stop_at_step: int | None = None) -> GANState:
  """Trains (or resumes) the run in `workdir`; returns the final state.

  `stop_at_step` ends this invocation after that global step, with a checkpoint, as a
  SIGTERM would (for notebooks with session limits); rerunning continues from there.
  `train.time_budget_minutes` ends the run the same way once its logged `time_s` (the
  training seconds of all its invocations; `cpu_s`, the process' CPU seconds, with
  `train.time_budget_clock='cpu'`) passes the budget: runs compared at an equal budget.
  """
  parallel.check_accelerator(config.train.require_accelerator)
  mesh = parallel.make_mesh()
  validate_config(config, num_devices=mesh.size)
  workdir = Path(workdir)
  config = checkpoint.with_absolute_directory(config)  # As recorded: found from anywhere.
  # One process writes the run's files; every process computes every step, grid and
  # evaluation (they are collectives over the mesh) and saves the checkpoints with it.
  main = distributed.is_main()
  with distributed.fail_together(f'preparing the run folder {workdir}'):
    if main:
      _prepare_run_folder(workdir)

  images, labels = data.load(config.data)
  dataset = {'image': images, 'label': labels}
  per_step = schedule.images_per_step(config)
  steps_per_epoch = schedule.steps_per_epoch(config, len(images))
  if steps_per_epoch == 0:
    raise ValueError(f'{len(images)} examples make no step of {per_step} images '
                     f'(train.n_dis * train.batch_size).')
  total_steps = schedule.total_steps(config, len(images))
  clock = schedule.Clock(steps_per_epoch, per_step)

  networks = Networks(config)
  state = jax.jit(lambda: create_state(config, networks, total_steps),
                  out_shardings=parallel.replicated(mesh))()
  checkpointer = checkpoint.Checkpointer.of_run(config, workdir)
  restored = checkpointer.restore_latest(state, images_per_step=per_step)
  if restored is not None:
    state = restored
  step = int(state.step)
  if step > total_steps:
    raise ValueError(f'The checkpoint in {checkpointer.directory} is at step {step}, past '
                     f'the {total_steps} steps of train.num_epochs={config.train.num_epochs}.')
  if main:
    print(f'{"Resuming at" if step else "Starting"} step {step}/{total_steps} '
          f'({steps_per_epoch} steps an epoch, {per_step} real images a step over '
          f'{mesh.size} {jax.devices()[0].platform} device(s) in {jax.process_count()} '
          f'process(es)) in {workdir}', flush=True)

  def counters(at_step: int) -> dict:
    return {'step': at_step, 'epoch': clock.epoch(at_step), 'kimg': clock.kimg(at_step),
            'g_steps': at_step, 'd_steps': at_step * config.train.n_dis}

  train_steps = steps.make_train_steps(config, networks, mesh)
  step_inputs = _step_inputs(config, dataset, mesh)
  sampling = Sampling(config, networks)
  sample, grid_rows, row_names = _grid_sampler(config, sampling)
  samples_every = schedule.parse(config.eval.samples_every)
  eval_every = schedule.parse(config.eval.every)
  checkpoint_every = schedule.parse(config.checkpoint.every)

  def write_grid(images: np.ndarray) -> None:
    if main:
      visualize.save_grid(images, visualize.grid_path(workdir, step), grid_rows, row_names)

  def save_samples() -> None:
    write_grid(sample(sampling.variables(state)))  # Sampling: on every process (the mesh's).

  first_grid = sample(sampling.variables(state)) if step == 0 else None
  with distributed.fail_together(f'writing the run folder {workdir}'):  # Files only.
    if main:
      config_files.record_config(config, workdir)
    if first_grid is not None:
      write_grid(first_grid)
    writer = logs.MetricWriter(workdir, resume_step=step, tensorboard=config.log.tensorboard,
                               writes=main)
  evaluator = None
  if eval_every is not None:
    from gan.evaluate import Evaluator, format_record  # The FID Inception only when asked for.
    evaluator = Evaluator(config, networks, sampling=sampling)

  def evaluate() -> None:
    record = {**counters(step), 'time_s': round(train_clock.seconds(), 3),
              'cpu_s': round(train_clock.cpu_seconds(), 3),
              **evaluator(sampling.variables(state), config.eval.num_samples)}
    writer.write(record)
    writer.flush()
    if main:
      print(f'\nstep {step} (epoch {record["epoch"]:g}): {format_record(record)}', flush=True)

  # The main process's log holds the run's time so far: every process's clock goes on there.
  train_clock = logs.TrainClock(distributed.from_main(writer.resumed_seconds),
                                distributed.from_main(writer.resumed_cpu_seconds))
  buffer = logs.MetricBuffer(writer, counters, per_step, train_clock)
  budget_s = 60 * config.train.time_budget_minutes  # 0: none.
  budget_key, budget_clock = {'wall': ('time_s', train_clock.seconds),
                              'cpu': ('cpu_s', train_clock.cpu_seconds)}[
                                  config.train.time_budget_clock]
  budget_spent = lambda: bool(budget_s) and budget_clock() >= budget_s
  bar = logs.progress_bar(total_steps, step, config.log.progress_bar and main)
  last_step = total_steps if stop_at_step is None else min(stop_at_step, total_steps)
  compiled: set[int] = set()  # The k of each call compiled so far.
  over_budget = distributed.any_process([budget_spent()])[0]
  stopping = False  # A stop asked for on any process, agreed by all after each call.
  try:
    with stop_request.StopRequest() as stop:
      while step < last_step and not stopping and not over_budget:
        epoch, position = divmod(step, steps_per_epoch)
        order = data.epoch_permutation(config.seed, epoch, len(images))
        while (position < steps_per_epoch and step < last_step and not stopping and
               not over_budget):
          # Calls of k steps start at multiples of k into the epoch and never cross its
          # end, so a run compiles one program, plus one for the epoch's remainder when
          # k does not divide the steps of an epoch.
          k = min(config.train.steps_per_call - position % config.train.steps_per_call,
                  steps_per_epoch - position, last_step - step)
          indices = order[position * per_step:(position + k) * per_step]
          compiles = k not in compiled
          if compiles:
            buffer.flush()  # The window so far is timed without this compilation.
          state, metrics = train_steps(state, *step_inputs(indices.reshape(k, per_step)))
          buffer.add(step + 1, metrics)
          previous, step, position = step, step + k, position + k
          if compiles:
            compiled.add(k)
            jax.block_until_ready(metrics)
            buffer.flush()
            buffer.restart_clock()  # img/s of later windows leaves compilation out.
          log_every = config.train.log_every_steps
          logs_now = step // log_every > previous // log_every or position == steps_per_epoch
          if logs_now:
            buffer.flush()
            bar.set_postfix_str(_postfix(buffer.last), refresh=False)
          bar.update(k)
          end = step == total_steps
          if budget_s:
            # Judged by the logged time, so that a resumed run (whose clock goes on from
            # the log) agrees; budgeted runs sync the host once a call for it.
            buffer.flush()
            over_budget = not end and buffer.last[budget_key] >= budget_s
          # The periodic work: each after the call that reaches its time, all at the end.
          due = [clock.due(every, previous, step) or end
                 for every in (samples_every, eval_every, checkpoint_every)]
          if due[0]:
            save_samples()
          if evaluator and due[1]:
            evaluate()
          if due[2]:
            buffer.flush()  # Raises on a non-finite step: the bad state is never saved.
            checkpointer.save(state)
          # Every process stops after the same call. Agreeing is a collective that waits
          # for the call, so a multi-host run agrees only after calls the host waited for
          # anyway (compiling, logging, budget, periodic work; every call with
          # train.log_every_steps <= steps_per_call); with one process it is free.
          if (jax.process_count() == 1 or compiles or logs_now or budget_s or any(due)):
            stopping, over_budget = distributed.any_process([bool(stop.requested),
                                                             over_budget])
      buffer.flush()
      checkpointer.save(state)
      if over_budget:
        # The budget's last grid, as the end of training would (the main process's view).
        if distributed.any_process([main and not visualize.grid_path(workdir, step).exists()])[0]:
          save_samples()
        if main:
          print(f'\nTime budget of {config.train.time_budget_minutes:g} min '
                f'({config.train.time_budget_clock} clock) reached at step '
                f'{step} ({clock.epoch(step):.2f} epochs); checkpoint saved.', flush=True)
      if stopping:
        why = stop.requested or 'a stop asked of another process'
        print(f'\n{distributed.describe()}Stopped by {why} at step {step}; checkpoint '
              f'saved. Rerun the same command to resume.', flush=True)
  finally:
    bar.close()
    writer.close()
    checkpointer.close()

  if main:
    visualize.write_summaries(workdir, config.eval.gif_fps, config.eval.curve_smoothing,
                              lambda at: f'epoch {clock.epoch(at):g}, {clock.kimg(at):g} kimg',
                              row_names)
  return state


def _prepare_run_folder(workdir: Path) -> None:
  """Creates the run folder, removes the temporaries of writes a kill interrupted, and
  checks that this process can write there: a read-only or misnamed folder stops the run
  before any work, naming the folder, with its files as they were."""
  try:
    (workdir / 'samples').mkdir(parents=True, exist_ok=True)
    for folder in (workdir, workdir / 'samples'):
      atomic.remove_leftovers(folder)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as error:
    raise OSError(error.errno, f'The run folder {workdir} cannot be written ({error.strerror}: '
                  f'{error.filename}); its files are untouched. Give a --workdir this '
                  f'process can write to.') from error


def _postfix(record: dict) -> str:
  if not record:
    return ''
  return (f'epoch {record["epoch"]:.2f} G {record["G/loss"]:.3f} D {record["D/loss"]:.3f} '
          f'acc r/f {record["D/acc_real"]:.2f}/{record["D/acc_fake"]:.2f} '
          f'{record["img_per_sec"]:.0f} img/s')


def _step_inputs(config: ml_collections.ConfigDict, dataset: dict, mesh: Mesh):
  """indices [k, n_dis * B] -> the (dataset, indices or batches) arguments of a call of k
  steps.

  With `data.on_device` the uint8 dataset is copied to the devices once and each call
  gathers its batches there; otherwise each host gathers the rows of its own devices and
  copies them over. Every process holds the same `idx` (the epoch's permutation is a
  function of the seed), so all build the same global batch.
  """
  sharding = parallel.stacked_batch_sharding(mesh)
  if config.data.on_device:
    on_device = jax.device_put(dataset, parallel.replicated(mesh))
    return lambda idx: (on_device, parallel.global_batch(idx.astype(np.int32), sharding))
  return lambda idx: (None, {key: parallel.gathered_batch(values, idx, sharding)
                             for key, values in dataset.items()})


def _grid_sampler(config: ml_collections.ConfigDict, sampling: Sampling):
  """(G's variables as sampled -> the fixed grid's samples in [-1, 1] on the host, its rows,
  the rows' names or None): grid_size x grid_size samples, or for a conditional model one
  row of grid_size per class, named; noise from the run's 'samples' stream."""
  networks = sampling.networks
  size = config.eval.grid_size
  rows, names = size, None
  if networks.conditional:
    names = data.dataset_spec(config.data).class_names
    rows = len(names)
  labels = visualize.grid_labels(rows, size, networks.spec.num_classes, networks.conditional)
  z = networks.latents(streams.run_keys(config.seed)['samples'], rows * size)
  generate = sampling.sampler()
  return (lambda variables: np.asarray(jax.device_get(generate(variables, z, labels))),
          rows, names)
