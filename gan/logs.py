"""Where a run's numbers go: metrics.jsonl, TensorBoard events and the progress bar.

Leaf module: records are flat dicts of JSON-able scalars with `step`, `epoch`, `kimg`.
"""

import json
from pathlib import Path

import tqdm


class MetricWriter:
  """Appends records to `<workdir>/metrics.jsonl` and, optionally, TensorBoard.

  On resume, records of steps after the restored checkpoint (written before a crash, but
  undone by the restore) are dropped, so the file describes the run that continues.
  """

  def __init__(self, workdir: str | Path, resume_step: int, tensorboard: bool):
    self.path = Path(workdir) / 'metrics.jsonl'
    if self.path.exists():
      kept = [line for line in self.path.read_text().splitlines()
              if line.strip() and json.loads(line)['step'] <= resume_step]
      self.path.write_text(''.join(line + '\n' for line in kept))
    self._file = open(self.path, 'a')
    self._tensorboard = None
    if tensorboard:
      from tensorboardX import SummaryWriter  # Imported only when asked for.
      self._tensorboard = SummaryWriter(str(Path(workdir) / 'tensorboard'))

  def write(self, record: dict) -> None:
    self._file.write(json.dumps(record) + '\n')
    if self._tensorboard is not None:
      for key, value in record.items():
        if key != 'step' and isinstance(value, (int, float)):
          self._tensorboard.add_scalar(key, value, record['step'])

  def flush(self) -> None:
    self._file.flush()
    if self._tensorboard is not None:
      self._tensorboard.flush()

  def close(self) -> None:
    self._file.close()
    if self._tensorboard is not None:
      self._tensorboard.close()


def progress_bar(total_steps: int, initial_step: int, enabled: bool) -> tqdm.tqdm:
  return tqdm.tqdm(total=total_steps, initial=initial_step, unit='step', disable=not enabled,
                   dynamic_ncols=True, smoothing=0.1)
