"""The package's shape: imports point one way, modules stay small, the README's commands
name things that exist."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from gan.config_files import load_config

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 310  # "No module over ~300 lines" (the recognisability classifier is 304).


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _module_level_imports(path: Path, modules: set[str]) -> set[str]:
  """The gan modules `path` imports at module level (imports inside functions are lazy
  and excluded). `from gan.x import y` needs module gan.x.y when that is one (the package
  gan.x only runs first), else a name of gan.x itself."""
  found = set()
  for node in ast.parse(path.read_text()).body:
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      submodules = {f'{node.module}.{alias.name}' for alias in node.names}
      found |= submodules if submodules <= modules else {node.module}
  return {name for name in found if name in modules}


def test_no_import_cycle_among_gan_modules():
  paths = sorted((ROOT / 'gan').rglob('*.py'))
  modules = {_module_name(p) for p in paths}
  graph = {_module_name(p): _module_level_imports(p, modules) - {_module_name(p)}
           for p in paths}
  state = {}

  def visit(name, trail):
    if state.get(name) == 'done':
      return
    if state.get(name) == 'open':
      raise AssertionError(f'import cycle: {" -> ".join(trail[trail.index(name):] + [name])}')
    state[name] = 'open'
    for dep in sorted(graph[name]):
      visit(dep, trail + [name])
    state[name] = 'done'

  for name in sorted(graph):
    visit(name, [])


def test_no_module_over_about_300_lines():
  sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
           for p in (ROOT / 'gan').rglob('*.py')}
  assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def _readme_code() -> str:
  text = (ROOT / 'README.md').read_text()
  return '\n'.join(re.findall(r'```(?:bash|python)?\n(.*?)```', text, re.S) +
                   re.findall(r'`([^`\n]+)`', text))


def test_every_module_the_readme_runs_exists():
  names = set(re.findall(r'python3? -m (gan(?:\.\w+)+)', _readme_code()))
  assert {'gan.evaluate', 'gan.sample', 'gan.compare', 'gan.summary', 'gan.bench'} <= names
  for name in names:
    assert importlib.util.find_spec(name) is not None, name


def test_every_config_and_override_the_readme_names_exists():
  code = _readme_code()
  configs = set(re.findall(r'(configs/\w+\.py)(?::(\w+))?', code))
  assert ('configs/recap.py', '') in configs and ('configs/recap.py', 'smoke') in configs
  for path, variant in configs:
    load_config(f'{path}:{variant}' if variant else path)
  config = load_config('configs/recap.py')
  overrides = set(re.findall(r'--config\.([\w.]+)=', code))
  assert overrides, 'the README shows overrides'
  for dotted in overrides:
    node = config
    for part in dotted.split('.'):
      assert part in node, f'--config.{dotted}: no such field'
      node = node[part]


@pytest.mark.parametrize('target', ['train', 'test', 'smoke', 'bench'])
def test_make_targets_the_readme_relies_on_exist(target):
  assert re.search(rf'^{target}:', (ROOT / 'Makefile').read_text(), re.M)
