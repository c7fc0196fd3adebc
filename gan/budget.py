"""How long every run of a study trains (`gan.study --budget`): wall or CPU minutes, or
epochs, and the train.py settings that stop a run there."""

import dataclasses
from pathlib import Path

from gan import config_files, visualize


@dataclasses.dataclass(frozen=True)
class Budget:
  """How long every run of a study trains: `amount` of 'min', 'min cpu' or 'epochs'."""
  amount: float
  unit: str

  @classmethod
  def parse(cls, text: str) -> 'Budget':
    number, _, unit = text.strip().partition(' ')
    unit = ' '.join(unit.split())
    try:
      amount = float(number)
    except ValueError:
      amount = -1.0
    if unit not in ('min', 'min cpu', 'epochs') or amount <= 0:
      raise ValueError(f"Budget {text!r}: give 'N min', 'N min cpu' or 'N epochs' with N > 0.")
    if unit == 'epochs' and amount != int(amount):
      raise ValueError(f'Budget {text!r}: a whole number of epochs.')
    return cls(amount, unit)

  def text(self) -> str:
    """As given on the command line: '150 min cpu'."""
    return f'{self.amount:g} {self.unit}'

  def __str__(self) -> str:
    epochs = int(self.amount)
    return {'min': f'{self.amount:g} min', 'min cpu': f'{self.amount:g} min of CPU time',
            'epochs': f'{epochs} epoch{"s" if epochs > 1 else ""}'}[self.unit]

  def overrides(self) -> list[str]:
    """The train.py settings that stop a run at the budget."""
    if self.unit == 'epochs':
      return [f'train.num_epochs={int(self.amount)}']
    return [f'train.time_budget_minutes={self.amount:g}',
            f'train.time_budget_clock={"cpu" if self.unit == "min cpu" else "wall"}']

  def spent(self, workdir: Path) -> bool:
    """Whether the run in `workdir` trained to the budget (or to its config's end)."""
    path = workdir / 'metrics.jsonl'
    if not (workdir / 'config.json').is_file() or not path.is_file():
      return False
    records = [r for r in visualize.read_metrics(path) if 'G/loss' in r]
    if not records:
      return False
    config = config_files.read_run_config(workdir)
    epochs = self.amount if self.unit == 'epochs' else config.train.num_epochs
    if records[-1]['epoch'] >= epochs - 1e-9:
      return True
    key = {'min': 'time_s', 'min cpu': 'cpu_s'}.get(self.unit)
    return key is not None and records[-1].get(key, 0.0) >= 60 * self.amount
