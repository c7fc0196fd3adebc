r"""Side-by-side comparison of finished runs: a Markdown table and the final grids.

  python -m gan.compare runs/baseline_e3 runs/recap_e3 --out docs/results/compare

Writes `<out>.md` (the table), `<out>.png` (each run's last grid, titled) and, when any
run was evaluated, `<out>_fid.png` (FID against images shown and against training
wall-clock time, every run on one figure), and prints the table. Numbers come from each run's own files: parameters from its config.json,
img/s as the median over its logged windows, wall time as its last logged `time_s`
(training seconds over all its invocations; n/a for runs from before it was logged), losses and accuracies as the mean over its
last epoch (single steps of a GAN are too noisy to compare), and sample quality from its
latest evaluation record with the most samples (`python -m gan.evaluate` or `eval.every`):
FID and KID, the recognisable share and class entropy, the class accuracy and intra-FID of
conditional runs, IS when measured, and the sample count. The FID curves use each run's
most frequent protocol (sample count and reference):
cheap evaluations of kept checkpoints (`gan.evaluate --step`) draw the curve while one large
final evaluation fills the table.
"""

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

from gan import atomic, config_files, summary, visualize  # noqa: E402

_OUT = flags.DEFINE_string('out', 'compare', 'Output path without extension.')


def summarize_run(workdir: Path, live_g: bool = False) -> dict:
  """The run's row; `live_g`: its sample quality from the evaluations of its live G
  (`gan.evaluate --live_g`), which are otherwise left out of its numbers."""
  config = config_files.read_run_config(workdir)
  records = [r for r in visualize.read_metrics(workdir / 'metrics.jsonl') if 'G/loss' in r]
  if not records:
    raise ValueError(f'{workdir}: metrics.jsonl holds no training steps.')
  last_epoch = np.ceil(records[-1]['epoch']) - 1
  final = [r for r in records if r['epoch'] > last_epoch]
  g_params, d_params = (summary.total_parameters(layers)
                        for layers in summary.network_layers(config))
  mean = lambda key: float(np.mean([r[key] for r in final]))
  evals = [r for r in visualize.read_metrics(workdir / 'metrics.jsonl')
           if 'eval/num_samples' in r and (r.get('eval/g_weights') == 'live') == live_g]
  # Each evaluation at its step's training time: its own `time_s` (evaluations during
  # training) or that of the last training step logged before it (`gan.evaluate`).
  times = {r['step']: r['time_s'] for r in records if 'time_s' in r}
  # Records from before the sampling statistics were recorded sampled with the running ones.
  protocol = lambda r: (r['eval/num_samples'], r['eval/reference'],
                        r.get('eval/g_statistics', 'running'))
  described = lambda p: f'{p[0]:,} vs {p[1]}, {p[2]} statistics'
  quality, fid_curve, curve_protocol = {}, [], ''
  if evals:
    # The table shows the latest evaluation with the most samples; the curve, the protocol
    # evaluated most often (FID depends on the sample count: one curve never mixes two).
    last = max(evals, key=lambda r: r['eval/num_samples'])
    last = [r for r in evals if protocol(r) == protocol(last)][-1]
    quality = {'FID': last.get('eval/fid', np.nan), 'KID': last.get('eval/kid', np.nan),
               'recognisable': last.get('eval/recognisable', np.nan),
               'class entropy': last.get('eval/class_entropy', np.nan),
               'IS': last.get('eval/is', np.nan),
               'class accuracy': last.get('eval/class_accuracy', np.nan),
               'intra-FID': last.get('eval/intra_fid', np.nan),
               'eval samples': described(protocol(last))}
    counts = {}
    for r in evals:
      if 'eval/fid' in r:
        counts[protocol(r)] = counts.get(protocol(r), 0) + 1
    if counts:
      chosen = max(counts, key=lambda p: (counts[p], p[0]))
      fid_curve = sorted((r['kimg'], r.get('time_s', _time_at(times, r['step'])), r['eval/fid'])
                         for r in evals if 'eval/fid' in r and protocol(r) == chosen)
      curve_protocol = described(chosen)
  return {
      'run': workdir.name + (' (live G)' if live_g else ''), 'live G': live_g,
      'design': design_of(config).replace(', EMA', '') if live_g else design_of(config),
      'epochs': records[-1]['epoch'], 'G params': g_params,
      'D params': d_params,
      'img/s': float(np.median([r['img_per_sec'] for r in records[1:]] or [np.nan])),
      'wall time s': float(records[-1].get('time_s', np.nan)), 'fid_curve': fid_curve,
      'fid_curve_protocol': curve_protocol,
      'G loss': mean('G/loss'), 'D loss': mean('D/loss'),
      'D acc real': mean('D/acc_real'), 'D acc fake': mean('D/acc_fake'),
      'grid': _last_grid(workdir), **quality,
  }


def design_of(config) -> str:
  """'dcgan, hinge, SN in D, DiffAugment, EMA': the family, the loss and what is added."""
  from gan import state
  parts = [config.model.name, config.loss.name]
  block = config.model.get(config.model.name, {})
  for net in ('G', 'D'):
    if block.get(net, {}).get('spectral_norm', False) and config.model.name == 'dcgan':
      parts.append(f'SN in {net}')
  if config.loss.gradient_penalty:
    parts.append(f'GP {config.loss.gradient_penalty:g}')
  if config.loss.r1_gamma:
    parts.append(f'R1 {config.loss.r1_gamma:g}')
  if config.train.n_dis > 1:
    parts.append(f'n_dis {config.train.n_dis}')
  if config.augment.policy:
    policy = set(config.augment.policy.split(','))
    parts.append('DiffAugment' if policy & {'color', 'translation', 'cutout'}
                 else config.augment.policy)
  if state.keeps_g_ema(config):
    parts.append('EMA')
  if config.model.conditional:
    parts.append('AC-GAN' if config.model.class_head == 'acgan' else 'projection')
  return ', '.join(parts)


def _time_at(times: dict[int, float], step: int) -> float:
  earlier = [s for s in times if s <= step]
  return times[max(earlier)] if earlier else np.nan


def _last_grid(workdir: Path) -> Path:
  """The run's last fixed-noise grid (`samples/step_*.png`; `epoch_*.png` in run folders
  from before grids were named by step)."""
  grids = ([path for _, path in visualize.grid_files(workdir)] or
           sorted((workdir / 'samples').glob('epoch_*.png')))
  if not grids:
    raise ValueError(f'{workdir}/samples holds no grid.')
  return grids[-1]


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
  """The rows' `columns` (default: the comparison's), then the quality columns any row
  has."""
  columns = list(columns or ['run', 'design', 'epochs', 'G params', 'D params', 'img/s',
                             'wall time s', 'G loss', 'D loss', 'D acc real', 'D acc fake'])
  # Quality columns when any run was evaluated; IS only when some run measured it.
  for column in ('FID', 'KID', 'recognisable', 'class entropy', 'class accuracy', 'intra-FID',
                 'IS', 'eval samples'):
    values = [row.get(column, np.nan) for row in rows]
    if any(isinstance(v, str) or np.isfinite(v) for v in values):
      columns.append(column)

  def cell(value):
    if isinstance(value, int):
      return f'{value:,}'
    if isinstance(value, float):
      if np.isnan(value):
        return 'n/a'
      return f'{value:.3g}' if abs(value) < 100 else f'{value:,.0f}'
    return str(value)

  lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(row.get(c, np.nan)) for c in columns) + ' |' for row in rows]
  return '\n'.join(lines)


def grids_side_by_side(rows: list[dict], path: Path) -> None:
  fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 4.4), squeeze=False)
  for ax, row in zip(axes[0], rows):
    ax.imshow(np.asarray(Image.open(row['grid']).convert('RGB')))
    ax.set_title(f'{row["run"]}: epoch {row["epochs"]:g}')
    ax.axis('off')
  fig.tight_layout()
  with atomic.replacing(path) as temporary:
    fig.savefig(temporary, dpi=100)
  plt.close(fig)


def plot_fid(rows: list[dict], path: Path) -> bool:
  """FID against kimg and against wall-clock minutes, a line per run; False (and no
  file) when no run has an FID."""
  curves = [(row['run'], np.asarray(row['fid_curve'], float).reshape(-1, 3)) for row in rows
            if row['fid_curve']]
  if not curves:
    return False
  fig, (by_kimg, by_time) = plt.subplots(1, 2, figsize=(11, 4))
  protocols = {row['fid_curve_protocol'] for row in rows if row['fid_curve']}
  shared = protocols.pop() if len(protocols) == 1 else ''
  for row, (name, curve) in zip([row for row in rows if row['fid_curve']], curves):
    label = name if shared else f'{name} ({row["fid_curve_protocol"]})'
    by_kimg.plot(curve[:, 0], curve[:, 2], 'o-', label=label)
    by_time.plot(curve[:, 1] / 60, curve[:, 2], 'o-', label=label)
  ylabel = f'FID ({shared})' if shared else 'FID'
  by_kimg.set(xlabel='images shown (kimg)', ylabel=ylabel, title='FID against images shown')
  by_time.set(xlabel='training wall-clock time (min)', ylabel=ylabel,
              title='FID against wall-clock time')
  by_kimg.legend()
  fig.tight_layout()
  with atomic.replacing(path) as temporary:
    fig.savefig(temporary, dpi=100)
  plt.close(fig)
  return True


def main(argv):
  workdirs = [Path(a) for a in argv[1:]]
  if not workdirs:
    raise app.UsageError('Give one or more run folders.')
  rows = [summarize_run(w) for w in workdirs]
  out = Path(_OUT.value)
  out.parent.mkdir(parents=True, exist_ok=True)
  table = markdown_table(rows)
  atomic.write_text(out.with_suffix('.md'), table + '\n')
  grids_side_by_side(rows, out.with_suffix('.png'))
  plot_fid(rows, out.parent / f'{out.name}_fid.png')
  print(table)


if __name__ == '__main__':
  from gan import cpu_defaults
  cpu_defaults.apply_xla_flags()
  app.run(main)
