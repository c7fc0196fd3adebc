"""Where a run's numbers go: metrics.jsonl, TensorBoard events and the progress bar.

Leaf module: records are flat dicts of JSON-able scalars with `step`, `epoch`, `kimg`.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import tqdm

from gan import atomic


class NonFiniteError(FloatingPointError):
  """A loss or gradient norm stopped being finite."""


class MetricWriter:
  """Appends records to `<workdir>/metrics.jsonl` and, optionally, TensorBoard.

  On resume, records of steps after the restored checkpoint (written before a crash, but
  undone by the restore) are dropped, so the file describes the run that continues.
  """

  def __init__(self, workdir: str | Path, resume_step: int, tensorboard: bool,
               writes: bool = True):
    self.path = Path(workdir) / 'metrics.jsonl'
    # The training seconds (wall and the process' CPU) the kept records reached: a resumed
    # run's clocks go on there.
    self.resumed_seconds = self.resumed_cpu_seconds = 0.0
    self._file = self._tensorboard = None
    if not writes:  # A process of a multi-host run other than the main one: no files.
      return
    if self.path.exists():
      lines, records, torn = atomic.read_json_lines(self.path)
      if torn:
        print(f'Note: dropped the last line of {self.path}, cut short by a kill; the '
              f'steps after the checkpoint are written again.', flush=True)
      kept = [(line, record) for line, record in zip(lines, records)
              if record['step'] <= resume_step]
      atomic.write_text(self.path, ''.join(line + '\n' for line, _ in kept))
      self.resumed_seconds = max((record.get('time_s', 0.0) for _, record in kept),
                                 default=0.0)
      self.resumed_cpu_seconds = max((record.get('cpu_s', 0.0) for _, record in kept),
                                     default=0.0)
    self._file = open(self.path, 'a')
    if tensorboard:
      from tensorboardX import SummaryWriter  # Imported only when asked for.
      # On resume, TensorBoard drops the events of steps after the checkpoint that an
      # earlier invocation wrote: each step shows once.
      # Each invocation its own file: the file name's time has whole seconds only.
      self._tensorboard = SummaryWriter(str(Path(workdir) / 'tensorboard'),
                                        purge_step=resume_step + 1 if resume_step else None,
                                        filename_suffix=f'.from_step_{resume_step}')

  def write(self, record: dict) -> None:
    if self._file is None:
      return
    self._file.write(json.dumps(record) + '\n')
    if self._tensorboard is not None:
      for key, value in record.items():
        if key != 'step' and isinstance(value, (int, float)):
          self._tensorboard.add_scalar(key, value, record['step'])

  def flush(self) -> None:
    if self._file is None:
      return
    self._file.flush()
    if self._tensorboard is not None:
      self._tensorboard.flush()

  def close(self) -> None:
    if self._file is None:
      return
    self._file.close()
    if self._tensorboard is not None:
      self._tensorboard.close()


def progress_bar(total_steps: int, initial_step: int, enabled: bool) -> tqdm.tqdm:
  return tqdm.tqdm(total=total_steps, initial=initial_step, unit='step', disable=not enabled,
                   dynamic_ncols=True, smoothing=0.1)


class TrainClock:
  """Seconds of training of a run: this invocation's wall time since it started (its
  compilation, periodic work and checkpoints included), after `offset` seconds of the
  invocations before it; and the CPU seconds of this process (all its threads) the same
  way, after `cpu_offset`.

  A CPU run pinned to its own core spends CPU seconds as it spends wall seconds when
  nothing else runs there; when something does, its wall clock runs on while its CPU
  clock counts only the time it had the core: a budget in CPU seconds is fair to runs
  that shared the machine unequally.
  """

  def __init__(self, offset: float = 0.0, cpu_offset: float = 0.0):
    self._start = time.perf_counter() - offset
    self._cpu_start = time.process_time() - cpu_offset

  def seconds(self) -> float:
    return time.perf_counter() - self._start

  def cpu_seconds(self) -> float:
    return time.process_time() - self._cpu_start


class MetricBuffer:
  """Holds the device metrics of calls of k steps and writes them, a line a step, at a
  host sync.

  Fetching every call would stall the device queue; buffering keeps dispatch
  asynchronous and still logs every step. `counters(step)` gives the fields every line
  starts with (step, epoch, kimg, G and D steps); `images_per_step` times img/s; each
  line's `time_s` is `clock`'s seconds at the sync that wrote it.
  """

  def __init__(self, writer: MetricWriter, counters: Callable[[int], dict],
               images_per_step: int, clock: TrainClock | None = None):
    self._writer = writer
    self._clock = clock or TrainClock()
    self._counters = counters
    self._images_per_step = images_per_step
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
    img_per_sec = (len(records) * self._images_per_step /
                   max(now - self._window_start, 1e-9))
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
      record = {**self._counters(step), **{k: float(v) for k, v in metrics.items()},
                'img_per_sec': img_per_sec, 'time_s': round(self._clock.seconds(), 3),
                'cpu_s': round(self._clock.cpu_seconds(), 3)}
      self._writer.write(record)
      self.last = record
    self._pending = []
    self._writer.flush()
