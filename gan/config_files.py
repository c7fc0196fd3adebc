"""Config files: loading `path[:variant]` as `--config` flags spell it, overrides, and
the resolved config a run records."""

import ast
import importlib.util
import json
from pathlib import Path

import ml_collections


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
  path.write_text(json.dumps(current, indent=2, sort_keys=True) + '\n')


def _diff_keys(a: dict, b: dict, prefix: str = '') -> list[str]:
  keys = []
  for key in sorted(set(a) | set(b)):
    if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
      keys += _diff_keys(a[key], b[key], f'{prefix}{key}.')
    elif a.get(key) != b.get(key):
      keys.append(prefix + key)
  return keys
