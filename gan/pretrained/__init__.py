r"""Generators shipped with the package: samples on a fresh clone, with no data and no run.

  python -m gan.sample --pretrained cpu_dcgan --num 1000 --interpolate 5
  python -m gan.pretrained --workdir RUN --name NAME [--step N]   # ship a run's G

A shipped G is two files in this folder: `<name>.npz`, G's variables exactly as the run
samples them (`gan.sampling`: the EMA's parameters when it keeps one, BatchNorm statistics
by the run's `eval.g_statistics`, standing ones by default, so they belong to the
parameters stored), rounded to float16 (a few MB); and `<name>.json`, how it was made: the
run's config, folder, step, images shown, the commit, and its evaluation records at that
step. Loaded, the statistics are G's own (`eval.g_statistics='running'` from then on: the
stored ones), so a shipped G draws what its run drew, to float16 rounding.
"""

import argparse
import json
import subprocess
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from gan import config_files, visualize
from gan.networks import Networks
from gan.sampling import Sampling

FOLDER = Path(__file__).resolve().parent


def available() -> list[str]:
  """The names of the generators shipped in this folder."""
  return sorted(path.stem for path in FOLDER.glob('*.json') if path.with_suffix('.npz').exists())


def path_of(name_or_path: str) -> Path:
  """The .npz of a shipped name, or a path to one (exported elsewhere)."""
  path = Path(name_or_path)
  if path.suffix == '.npz' and path.is_file():
    return path
  if (FOLDER / f'{name_or_path}.npz').is_file():
    return FOLDER / f'{name_or_path}.npz'
  raise FileNotFoundError(f'No pretrained G {name_or_path!r}: ship one with `python -m '
                          f'gan.pretrained --workdir RUN --name NAME`, or use one of '
                          f'{available()} (or a path to an exported .npz).')


def export(workdir: Path, name: str, step: int | None = None, into: Path = FOLDER) -> Path:
  """Writes `<into>/<name>.npz` and `.json` from the run in `workdir` (its latest
  checkpoint, or that of `step`); returns the .npz path."""
  from gan import evaluate  # Restoring a run needs the checkpoint machinery.
  asked_step = step
  config, networks, state = evaluate.load_run(Path(workdir), step)
  variables = jax.device_get(Sampling(config, networks).variables(state))
  flat = traverse_util.flatten_dict(variables, sep='/')
  into.mkdir(parents=True, exist_ok=True)
  path = into / f'{name}.npz'
  np.savez_compressed(path, **{key: np.asarray(leaf, np.float16) for key, leaf in flat.items()})
  step = int(state.step)
  records = visualize.read_metrics(Path(workdir) / 'metrics.jsonl')
  made = {
      'name': name, 'run': str(Path(workdir).resolve()), 'step': step,
      'kimg': float(state.kimg), 'epoch': next((r['epoch'] for r in records
                                                if r.get('step') == step and 'epoch' in r), None),
      'g_statistics': config.eval.g_statistics, 'dtype': 'float16',
      'ema': state.g_ema is not None, 'commit': _commit(),
      'command': f'python -m gan.pretrained --workdir {workdir} --name {name}'
                 + (f' --step {asked_step}' if asked_step is not None else ''),
      'evaluations': [r for r in records if 'eval/num_samples' in r and r['step'] == step],
      'config': json.loads(config.to_json_best_effort()),
  }
  path.with_suffix('.json').write_text(json.dumps(made, indent=1) + '\n')
  return path


def load(name_or_path: str) -> tuple[ml_collections.ConfigDict, Networks, dict, dict]:
  """(config, networks, G's variables in float32, the JSON record) of a shipped G; the
  config samples with the stored statistics."""
  path = path_of(name_or_path)
  record = json.loads(path.with_suffix('.json').read_text())
  config = ml_collections.ConfigDict(config_files.upgrade(record['config']))
  config.eval.g_statistics = 'running'  # The stored statistics are the ones to use.
  with np.load(path) as arrays:
    variables = traverse_util.unflatten_dict(
        {key: arrays[key].astype(np.float32) for key in arrays.files}, sep='/')
  return config, Networks(config), variables, record


def _commit() -> str:
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=FOLDER, capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description="Ships a run's G as sampled (float16).")
  parser.add_argument('--workdir', type=Path, required=True)
  parser.add_argument('--name', required=True)
  parser.add_argument('--step', type=int, default=None)
  parser.add_argument('--into', type=Path, default=FOLDER)
  args = parser.parse_args(argv)
  path = export(args.workdir, args.name, args.step, args.into)
  print(f'{path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix(".json").name}')


if __name__ == '__main__':
  main()
