"""Installs that match the hardware: the extras pin the one jax, Python as jax needs, and a
run that needs an accelerator refuses the CPU at once."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

from gan import loop, parallel

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
  return tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']


def test_accelerator_extras_pin_the_same_jax_as_the_cpu_install():
  project = _project()
  pins = dict(re.match(r'([\w-]+)==(.+)', d).groups() for d in project['dependencies']
              if d.startswith(('jax==', 'jaxlib==')))
  assert pins['jax'] == pins['jaxlib']
  extras = project['optional-dependencies']
  for extra in ('cuda12', 'cuda13', 'tpu'):
    assert extras[extra] == [f'jax[{extra}]=={pins["jax"]}'], extra
  # Each extra is one jax provides (a typo would install plain jax, CPU-only).
  provided = importlib.metadata.metadata('jax').get_all('Provides-Extra')
  assert {'cuda12', 'cuda13', 'tpu'} <= set(provided)
  # The README and the accelerator check name each install.
  readme = (ROOT / 'README.md').read_text()
  for extra in ('cuda12', 'cuda13', 'tpu'):
    assert f"'.[test,{extra}]'" in readme and f"'.[{extra}]'" in parallel.INSTALL_HINT


def test_requires_python_is_what_the_pinned_jax_requires():
  assert _project()['requires-python'] == importlib.metadata.metadata('jax')['Requires-Python']


def test_a_run_that_requires_an_accelerator_stops_on_the_cpu(smoke_config, tmp_path):
  assert parallel.check_accelerator(False) == 'cpu'
  smoke_config.train.require_accelerator = True
  with pytest.raises(RuntimeError, match=re.escape("pip install -e '.[cuda13]'")):
    loop.train_and_evaluate(smoke_config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()  # Stopped before writing anything.
