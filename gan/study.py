r"""A study: several designs trained at one budget and scored by one protocol.

  python -m gan.study --out studies/cpu --budget '150 min cpu' --cores 0 --cores 1 \
      configs/recap.py configs/cpu_dcgan.py configs/cpu_dcgan.py:conditional
  python -m gan.study --out studies/gpu --budget '100 epochs' \
      --set model.compute_dtype=bfloat16 --set train.steps_per_call=39 configs/recap.py ...

Each config (`path[:variant]`) trains in `<out>/runs/<name>` (`recap`, `cpu_dcgan-conditional`;
its log beside it), by `train.py` in a process of its own, stopped by the budget:

  'N min'      N minutes of training wall-clock time (`train.time_budget_minutes`);
  'N min cpu'  N minutes of the training process' CPU time (`train.time_budget_clock=cpu`):
               the fair budget for runs pinned one to a core, whatever else the machine did;
  'N epochs'   N epochs (`train.num_epochs`; images matched across batch sizes).

A time budget keeps each config's own epochs as its schedule's length. Runs go one after
another, or one per `--cores` group at once, each pinned to its cores (Linux affinity;
the table says which). Rerunning the same command resumes: a run that spent its budget is
not started again, an interrupted one continues from its checkpoint, an evaluation done is
not done again, so a study may span several sittings.

Then each run is evaluated by `gan.evaluate` (pinned the same way): every kept checkpoint
(one each `--curve_every` of training) with `--curve_samples` against `--curve_reference`,
the curve of quality over training; the last one by the protocol of the table,
`--num_samples` (10,000) against `--reference` (the 50,000 training images) with the
run's metrics (FID, KID, the recognisable share and class entropy; class accuracy and
intra-FID for conditional designs), G sampled as each run's `eval.g_statistics` says;
with `--live_g`, also the live G of each run that keeps an EMA, a row of its own (what the
EMA buys, from the same training). The reference statistics are computed once first, with
all the cores given.

`<out>/study.md` gets the table (budget, cores, img/s, images shown, quality) and the
command, `study.png` the last grids, `study_fid.png` FID against images and time.
"""

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

from gan import atomic, checkpoint, compare, config_files, state, visualize
from gan.budget import Budget

REPOSITORY = Path(__file__).resolve().parents[1]


def run_name(spec: str) -> str:
  """'configs/cpu_dcgan.py:no_ema,diffaug' -> 'cpu_dcgan-no_ema+diffaug'."""
  path, _, variant = spec.partition(':')
  return Path(path).stem + (f'-{variant.replace(",", "+")}' if variant else '')


def parse_cores(text: str) -> frozenset[int]:
  """'0', '0-3' or '0,2,4-5' (as taskset -c) -> the set of CPU numbers."""
  cores = set()
  for part in text.split(','):
    first, _, last = part.strip().partition('-')
    if not first.isdigit() or (last and not last.isdigit()):
      raise ValueError(f'--cores {text!r}: CPU numbers such as 0, 0-3 or 0,2.')
    cores.update(range(int(first), int(last or first) + 1))
  return frozenset(cores)


@dataclasses.dataclass
class Study:
  out: Path
  specs: list[str]
  budget: Budget
  overrides: list[str] = dataclasses.field(default_factory=list)
  lanes: list[frozenset[int] | None] = dataclasses.field(default_factory=lambda: [None])
  curve_every: str = '250 kimg'
  curve_samples: int = 2_000
  curve_reference: str = 'test'
  num_samples: int = 10_000
  reference: str = 'train'
  metrics: str = ''  # '' : each run's own config.eval.metrics.
  live_g: bool = False  # Also the live G of each run keeping an EMA, a row of its own.

  def __post_init__(self):
    self._lock = threading.Lock()
    names = [run_name(spec) for spec in self.specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
      raise ValueError(f'Configs given twice: {repeated}.')
    for spec in self.specs:  # Fail before hours of training on a typo.
      config = config_files.load_config(spec)
      config_files.apply_overrides(config, self.overrides + self.budget.overrides())

  def workdir(self, spec: str) -> Path:
    return self.out / 'runs' / run_name(spec)

  def run(self) -> None:
    """Trains and evaluates every run (resuming), then writes the table and figures."""
    (self.out / 'runs').mkdir(parents=True, exist_ok=True)
    self._reference_statistics()
    queue, failures, lock = list(self.specs), {}, self._lock

    def lane(cores):
      while True:
        with lock:
          if not queue:
            return
          spec = queue.pop(0)
        try:
          self._train(spec, cores)
          self._evaluate(spec, cores)
        except subprocess.CalledProcessError as error:
          failures[spec] = f'{shlex.join(error.cmd)} exited with {error.returncode}'

    threads = [threading.Thread(target=lane, args=(cores,)) for cores in self.lanes]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    done = [spec for spec in self.specs if spec not in failures]
    if done:
      self.report(done)
    if failures:
      raise RuntimeError('Runs that failed (their logs in <out>/runs/<name>.log): ' +
                         '; '.join(f'{spec}: {why}' for spec, why in failures.items()))

  def _command(self, args: list[str], cores: frozenset[int] | None, log: Path) -> None:
    """Runs `python args...` from the repository, pinned to `cores`, appending to `log`."""
    command = [sys.executable, *args]
    if cores:  # Pinned before the program starts (no fork hook: this process has threads).
      command = [sys.executable, '-c', 'import os, sys; os.sched_setaffinity(0, '
                 f'{set(cores)}); os.execv(sys.executable, sys.argv[1:])', *command]
    with open(log, 'a') as out:
      out.write(f'\n$ {shlex.join(["python", *args])}' +
                (f'   (cores {_cores_text(cores)})' if cores else '') + '\n')
      out.flush()
      subprocess.run(command, cwd=REPOSITORY, stdout=out, stderr=subprocess.STDOUT,
                     check=True)

  def _reference_statistics(self) -> None:
    """The FID statistics of the reference splits, computed once (cached) in this process,
    with every core, before the lanes need them (two lanes would each compute them)."""
    uses_inception = not self.metrics or bool({'fid', 'kid', 'per_class'} & set(
        self.metrics.split(',')))
    splits = ([self.reference] if uses_inception else []) + (
        [self.curve_reference] if self.curve_every else [])
    if not splits:
      return
    from gan import metrics  # The FID Inception only when a metric needs it.
    config = config_files.load_config(self.specs[0])
    config_files.apply_overrides(config, self.overrides)  # The runs' data.
    for split in dict.fromkeys(splits):
      metrics.Context(config.data, split, config.eval.batch_size).reference_stats

  def _train(self, spec: str, cores) -> None:
    workdir = self.workdir(spec)
    if self.budget.spent(workdir):
      return
    print(f'Training {run_name(spec)} ({spec}, {self.budget})'
          + (f' on cores {_cores_text(cores)}' if cores else ''), flush=True)
    self._record_lane(spec, cores)
    self._command(self.train_args(spec), cores, workdir.with_suffix('.log'))

  def train_args(self, spec: str) -> list[str]:
    """The train.py command line (after `python`) of `spec`'s run."""
    settings = [*self.budget.overrides(), f'checkpoint.every={self.curve_every or "1 epoch"}',
                'checkpoint.max_to_keep=1000', 'log.progress_bar=False', *self.overrides]
    return ['train.py', '--config', spec, '--workdir', str(self.workdir(spec)),
            *(f'--config.{s}' for s in settings)]

  def _record_lane(self, spec: str, cores) -> None:
    """Notes in <out>/lanes.json the cores `spec` trains on, for the table."""
    with self._lock:
      path = self.out / 'lanes.json'
      lanes = json.loads(path.read_text()) if path.is_file() else {}
      lanes[run_name(spec)] = _cores_text(cores) if cores else 'all'
      atomic.write_text(path, json.dumps(lanes, indent=1) + '\n')

  def _evaluate(self, spec: str, cores) -> None:
    workdir = self.workdir(spec)
    config = config_files.read_run_config(workdir)
    steps = checkpoint.Checkpointer.of_run(config, workdir).all_steps()
    records = [r for r in visualize.read_metrics(workdir / 'metrics.jsonl')
               if 'eval/num_samples' in r]
    done = {(r['step'], r['eval/num_samples'], r['eval/reference'],
             r.get('eval/g_weights') == 'live') for r in records}
    dataset = config.data.dataset
    asks = []
    if self.curve_every:
      asks += [(step, self.curve_samples, self.curve_reference, 'fid,kid', False)
               for step in steps]
    asks.append((steps[-1], self.num_samples, self.reference, self.metrics, False))
    if self.live_g and state.keeps_g_ema(config):
      asks.append((steps[-1], self.num_samples, self.reference, self.metrics, True))
    for step, num_samples, reference, metrics, live in asks:
      if (step, num_samples, f'{dataset}:{reference}', live) in done:
        continue
      self._command(['-m', 'gan.evaluate', '--workdir', str(workdir), '--step', str(step),
                     '--num_samples', str(num_samples), '--reference', reference,
                     *(['--metrics', metrics] if metrics else []),
                     *(['--live_g'] if live else [])], cores, workdir.with_suffix('.log'))

  def report(self, specs: list[str]) -> str:
    """Writes study.md, study.png and study_fid.png; returns the table."""
    rows, row_specs = [], []
    for spec in specs:
      rows.append(compare.summarize_run(self.workdir(spec)))
      row_specs.append(spec)
      if self.live_g and state.keeps_g_ema(config_files.read_run_config(self.workdir(spec))):
        rows.append(compare.summarize_run(self.workdir(spec), live_g=True))
        row_specs.append(spec)
    path = self.out / 'lanes.json'
    lanes = json.loads(path.read_text()) if path.is_file() else {}
    for row, spec in zip(rows, row_specs):
      row['config'] = spec
      row['budget'] = str(self.budget)
      row['cores'] = lanes.get(run_name(spec), 'n/a')
      records = [r for r in visualize.read_metrics(self.workdir(spec) / 'metrics.jsonl')
                 if 'G/loss' in r]
      row['kimg'] = records[-1]['kimg']
      row['train min'] = records[-1]['time_s'] / 60
      row['CPU min'] = records[-1].get('cpu_s', float('nan')) / 60
    columns = ['run', 'config', 'design', 'budget', 'cores', 'img/s', 'train min', 'CPU min',
               'kimg', 'epochs', 'G params', 'D params', 'D acc real', 'D acc fake']
    table = compare.markdown_table(rows, columns)
    command = shlex.join(['python', '-m', 'gan.study', *self.argv()])
    text = (f'# Study: {len(rows)} designs at {self.budget} each\n\n{table}\n\n'
            f'Sample quality from each run\'s last checkpoint, {self.num_samples:,} samples '
            f'against {self.reference}; ' + (
                f'the FID curves {self.curve_samples:,} samples against '
                f'{self.curve_reference} at each kept checkpoint' if self.curve_every else
                'the FID curves from the evaluations during training (eval.every)') +
            f'. img/s is the median of the '
            f'logged windows (lower when the machine was shared); train min is wall-clock, '
            f'CPU min the training process\' CPU time.\n\n'
            f'Reproduce (resumes where it stopped):\n\n```bash\n{command}\n```\n')
    atomic.write_text(self.out / 'study.md', text)
    atomic.write_text(self.out / 'study.json', json.dumps(
        [{k: (str(v) if isinstance(v, Path) else v) for k, v in row.items()} for row in rows],
        indent=1) + '\n')
    # The grids are the runs' own (their EMA's when kept): one a run.
    compare.grids_side_by_side([row for row in rows if not row['live G']],
                               self.out / 'study.png')
    compare.plot_fid(rows, self.out / 'study_fid.png')
    return table

  def argv(self) -> list[str]:
    args = ['--out', str(self.out), '--budget', self.budget.text()]
    for setting in self.overrides:
      args += ['--set', setting]
    for cores in self.lanes:
      if cores:
        args += ['--cores', _cores_text(cores)]
    defaults = Study.__dataclass_fields__
    for name in ('curve_every', 'curve_samples', 'curve_reference', 'num_samples',
                 'reference', 'metrics'):
      if getattr(self, name) != defaults[name].default:
        args += [f'--{name}', str(getattr(self, name))]
    return args + (['--live_g'] if self.live_g else []) + self.specs


def _cores_text(cores: frozenset[int]) -> str:
  return ','.join(str(c) for c in sorted(cores))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description='Trains configs at one budget and scores them by one protocol.',
      epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('configs', nargs='+', help='config files, path[:variant]')
  parser.add_argument('--out', type=Path, required=True, help='the study folder')
  parser.add_argument('--budget', required=True, help="'N min', 'N min cpu' or 'N epochs'")
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='a config override for every run (repeatable)')
  parser.add_argument('--cores', action='append', default=[],
                      help='CPUs of one lane, e.g. 0 or 0-7 (repeatable: one run per lane at once)')
  parser.add_argument('--curve_every', default='250 kimg',
                      help="checkpoints kept for the curve ('' : no curve)")
  parser.add_argument('--curve_samples', type=int, default=2_000)
  parser.add_argument('--curve_reference', default='test')
  parser.add_argument('--num_samples', type=int, default=10_000)
  parser.add_argument('--reference', default='train')
  parser.add_argument('--metrics', default='', help="the table's metrics (default: each "
                      "run's config.eval.metrics)")
  parser.add_argument('--live_g', action='store_true',
                      help='also score the live G of each run that keeps an EMA (a row of '
                           'its own: what the EMA buys, from the same training)')
  parser.add_argument('--dry_run', action='store_true',
                      help='check every config and override, print the train commands, stop')
  args = parser.parse_args(argv)
  try:
    study = Study(args.out, args.configs, Budget.parse(args.budget), args.set,
                  [parse_cores(c) for c in args.cores] or [None], args.curve_every,
                  args.curve_samples, args.curve_reference, args.num_samples, args.reference,
                  args.metrics, args.live_g)
  except (ValueError, KeyError, FileNotFoundError) as error:
    parser.error(str(error))
  if args.dry_run:
    print('\n'.join(shlex.join(['python', *study.train_args(spec)]) for spec in study.specs))
    return
  study.run()
  print((args.out / 'study.md').read_text())


if __name__ == '__main__':
  main()
