"""Loads a config file given as `path[:variant]`, as `--config` flags spell it."""

import importlib.util
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
