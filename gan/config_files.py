"""Config files: loading `path[:variant]` as `--config` flags spell it, overrides, and
the resolved config a run records."""

import ast
import importlib.util
import json
from pathlib import Path

import ml_collections

from gan import atomic


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`configs/recap.py:smoke` -> configs/recap.py's get_config('smoke')."""
  path, _, variant = spec.partition(':')
  if not Path(path).is_file():
    raise FileNotFoundError(f'Config file {path} not found.')
  module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
  """Applies `dotted.key=value` settings in place, as `--config.dotted.key=value` would.

  The value is read as a Python literal when it is one (`2e-4`, `(64, 128)`, `True`), else
  kept as a string (`bfloat16`); ConfigDict refuses a value of another type than the
  field's. An unknown key fails instead of adding a field nothing reads.
  """
  for item in overrides:
    key, sep, text = item.partition('=')
    if not sep:
      raise ValueError(f'Override {item!r} is not of the form dotted.key=value.')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *parents, leaf = key.split('.')
    node = config
    for name in parents:
      if name not in node:
        raise KeyError(f'Override {item!r}: the config has no field {name!r}.')
      node = node[name]
    if leaf not in node:
      raise KeyError(f'Override {item!r}: the config has no field {key!r}.')
    node[leaf] = value


def record_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
  """Writes `workdir/config.json`; says loudly when it replaces a different stored config
  (the config given now always wins)."""
  path = workdir / 'config.json'
  current = json.loads(config.to_json_best_effort())
  if path.exists():
    changed = sorted(_diff_keys(json.loads(path.read_text()), current))
    if changed:
      print(f'WARNING: {path} holds a different config; using the one given now. '
            f'Changed: {", ".join(changed)}', flush=True)
  atomic.write_text(path, json.dumps(current, indent=2, sort_keys=True) + '\n')


def _diff_keys(a: dict, b: dict, prefix: str = '') -> list[str]:
  keys = []
  for key in sorted(set(a) | set(b)):
    if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
      keys += _diff_keys(a[key], b[key], f'{prefix}{key}.')
    elif a.get(key) != b.get(key):
      keys.append(prefix + key)
  return keys


# The DCGAN settings that lived directly under config.model before families had blocks.
_DCGAN_FIELDS = ('G', 'D', 'bn_momentum', 'bn_epsilon', 'conv_transpose_impl',
                 'strided_conv_impl', 'winograd')


def _period(epochs: int) -> str:
  return f'{epochs} epochs' if epochs else ''


def upgrade(stored: dict) -> dict:
  """A run's stored config.json in today's layout: runs recorded before model families
  had their own block, before schedules were periods, or before a field existed load as
  the run they were (every added field at the value that reproduces the old behaviour)."""
  config = json.loads(json.dumps(stored))  # A deep copy.
  model = config['model']
  if model.get('name') == 'dcgan' and 'dcgan' not in model:
    model['dcgan'] = {name: model.pop(name) for name in _DCGAN_FIELDS if name in model}
  model.setdefault('conditional', False)
  model.setdefault('class_head', 'projection')
  if 'dcgan' in model:
    for net in ('G', 'D'):
      model['dcgan'][net].setdefault('spectral_norm', False)
  if 'resnet' in model:
    model['resnet'].setdefault('weight_init', 'xavier')
    model['resnet']['G'].setdefault('shared_dim', 0)
  config['data'].setdefault('dataset', 'cifar10')
  config.setdefault('augment', {'policy': ''})
  for name in ('gradient_penalty', 'r1_gamma'):
    config['loss'].setdefault(name, 0.0)
  config['loss'].setdefault('class_weight', 1.0)
  for name, value in (('g_batch_size', 0), ('n_dis', 1), ('g_ema_decay', 0.0),
                      ('g_ema_half_life_kimg', 0.0), ('time_budget_minutes', 0.0),
                      ('time_budget_clock', 'wall'),
                      ('require_accelerator', False), ('g_ema_start_step', 0)):
    config['train'].setdefault(name, value)
  config['data'].setdefault('random_flip', False)
  for net in ('G', 'D'):
    config['optim'][net].setdefault('schedule', 'constant')
  evaluation = config['eval']
  if 'every_epochs' in evaluation:
    evaluation['every'] = _period(evaluation.pop('every_epochs'))
  evaluation.setdefault('samples_every', '1 epoch')
  evaluation.setdefault('metrics', ['fid', 'kid', 'recognisability'])
  # Runs from before G's sampling statistics were a setting sampled with the running ones.
  evaluation.setdefault('g_statistics', 'running')
  evaluation.setdefault('standing_batches', 16)
  evaluation.setdefault('standing_batch_size', 0)
  config['checkpoint'].setdefault('directory', '')
  if 'every_epochs' in config['checkpoint']:
    config['checkpoint']['every'] = _period(config['checkpoint'].pop('every_epochs'))
  return config


def read_run_config(workdir: Path) -> ml_collections.ConfigDict:
  """The config a run recorded (`workdir/config.json`), upgraded to today's layout."""
  path = Path(workdir) / 'config.json'
  if not path.is_file():
    raise FileNotFoundError(f'{path}: missing; is {workdir} a run folder (train.py --workdir)?')
  return ml_collections.ConfigDict(upgrade(json.loads(path.read_text())))
