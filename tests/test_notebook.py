"""The Colab notebook is valid and calls the package's real functions."""

import ast
import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / 'notebooks' / 'colab_tpu.ipynb'


def test_notebook_cells_parse_and_use_existing_functions():
  notebook = json.loads(NOTEBOOK.read_text())
  assert notebook['nbformat'] == 4
  sources = [''.join(c['source']) for c in notebook['cells'] if c['cell_type'] == 'code']
  python = '\n'.join(line for s in sources for line in s.splitlines()
                     if not line.lstrip().startswith(('!', '%')))
  tree = ast.parse(python)  # Every cell is valid Python once shell lines are dropped.
  from gan import data, evaluate, loop, summary  # noqa: F401
  calls = {f'{n.func.value.id}.{n.func.attr}' for n in ast.walk(tree)
           if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
           and isinstance(n.func.value, ast.Name)}
  for call in ('data.load', 'loop.train_and_evaluate', 'summary.summarize', 'recap.get_config',
               'evaluate.evaluate_run', 'evaluate.format_record'):
    assert call in calls
    module, name = call.split('.')
    assert hasattr(__import__(f'configs.{module}' if module == 'recap' else f'gan.{module}',
                              fromlist=[name]), name)
