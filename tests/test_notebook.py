"""The Colab notebook runs top to bottom: executed here on the CPU (nbclient, a real
kernel) with its parameters cell replaced by a smoke run's, as a user's Run all would."""

import json
import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / 'notebooks' / 'colab_tpu.ipynb'
TORCHSCRIPT = os.environ.get('GAN_FID_TORCHSCRIPT', '')


def _parameters_cell(notebook):
  cells = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
  assert len(cells) == 1, 'the notebook needs exactly one cell tagged "parameters"'
  return cells[0]


def test_the_notebook_is_valid_and_defaults_to_a_resumable_accelerator_run():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  names = {}
  exec(_parameters_cell(notebook).source, {}, names)  # Plain assignments only.
  assert names['CONFIG'] == 'configs/recap.py' and names['ACCELERATOR'] and names['INSTALL']
  assert names['USE_DRIVE'] and names['WORKDIR'].startswith('/content/drive/')
  sources = '\n'.join(c.source for c in notebook.cells if c.cell_type == 'code')
  assert "config.checkpoint.every = '10 epochs'" in sources  # Not every epoch on a TPU.
  assert all(not c.get('outputs') for c in notebook.cells if c.cell_type == 'code')  # Stored clean.


@pytest.mark.skipif(not TORCHSCRIPT, reason='needs $GAN_FID_TORCHSCRIPT (default_1.pt)')
def test_the_notebook_runs_top_to_bottom_on_the_cpu(tiny_cifar_dir, tmp_path):
  from nbclient import NotebookClient
  from gan.metrics import weights
  cache = tmp_path / 'cache'
  os.environ['GAN_CACHE_DIR'] = str(cache)
  try:
    weights.main(['--torchscript', TORCHSCRIPT])
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path / 'run'
    _parameters_cell(notebook).source = '\n'.join([
        "CONFIG = 'configs/recap.py:smoke'", f'PROJECT_DIR = {str(ROOT)!r}', "REPO_URL = ''",
        'USE_DRIVE = False', f'WORKDIR = {str(workdir)!r}', 'INSTALL = False',
        'ACCELERATOR = False', 'STOP_AT_STEP = None', 'EVAL_SAMPLES = 20',
        "EVAL_REFERENCE = 'test'"])
    env_cell = nbformat.v4.new_code_cell(
        f'import os\nos.environ["GAN_CIFAR10_DIR"] = {str(tiny_cifar_dir)!r}')
    notebook.cells.insert(1, env_cell)
    NotebookClient(notebook, timeout=600, kernel_name='python3',
                   resources={'metadata': {'path': str(tmp_path)}}).execute()
  finally:
    os.environ.pop('GAN_CACHE_DIR')
  for name in ('curves.png', 'progress.gif', 'sampled/grid.png', 'checkpoints'):
    assert (workdir / name).exists(), name
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert records[-1]['eval/num_samples'] == 20 and records[-1]['eval/fid'] > 0
  printed = ''.join(out.get('text', '') for c in notebook.cells if c.cell_type == 'code'
                    for out in c.outputs)
  assert 'FID ' in printed and 'step 12' in printed  # The evaluation's line, the training's end.
  images = [out for c in notebook.cells for out in c.get('outputs', [])
            if 'image/png' in out.get('data', {}) or 'image/gif' in out.get('data', {})]
  assert len(images) >= 2  # The curves and the GIF were displayed.
