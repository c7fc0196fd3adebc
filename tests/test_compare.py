"""gan.compare: the side-by-side table and picture of finished runs."""

import json

import imageio.v3 as iio
import pytest

from gan import compare, loop


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory, tiny_cifar_dir):
  from configs import baseline, recap
  runs = []
  for name, module in (('baseline', baseline), ('recap', recap)):
    config = module.get_config('smoke')
    config.data.dir = str(tiny_cifar_dir)
    config.log.progress_bar = False
    config.log.tensorboard = False
    workdir = tmp_path_factory.mktemp(name)
    loop.train_and_evaluate(config, workdir)
    runs.append(workdir)
  return runs


def test_table_reports_each_run_from_its_own_files(two_runs, tmp_path):
  rows = [compare.summarize_run(w) for w in two_runs]
  # Keras' totals: trainable + BatchNorm statistics (1,446,976 + 8,576; 2,885,760 + 8,960).
  assert [r['G params'] for r in rows] == [1_455_552, 2_894_720]
  assert all(r['epochs'] == 2 for r in rows)
  table = compare.markdown_table(rows)
  assert 'FID' not in table  # No run was evaluated: no quality columns.
  assert table.count('\n') == 3 and '1,455,552' in table

  # An evaluation record (as gan.evaluate appends it) adds the quality columns.
  record = {'step': 12, 'epoch': 2.0, 'kimg': 0.192, 'eval/fid': 250.5, 'eval/kid': 0.21,
            'eval/kid_std': 0.01, 'eval/recognisable': 0.125, 'eval/class_entropy': 1.5,
            'eval/class_histogram': [1] * 10, 'eval/num_samples': 20,
            'eval/reference': 'cifar10:test'}
  with open(two_runs[1] / 'metrics.jsonl', 'a') as f:
    f.write(json.dumps(record) + '\n')
  rows = [compare.summarize_run(w) for w in two_runs]
  table = compare.markdown_table(rows).splitlines()
  assert table[0].split(' | ')[-5:] == ['FID', 'KID', 'recognisable', 'class entropy',
                                        'eval samples |']
  assert table[0].split(' | ')[:3] == ['| run', 'design', 'epochs']
  assert 'dcgan, non_saturating' in table[2]
  # Wall time is the last step's logged training seconds.
  last = [json.loads(line) for line in (two_runs[1] / 'metrics.jsonl').read_text().splitlines()
          if 'G/loss' in line][-1]
  assert rows[1]['wall time s'] == last['time_s'] > 0
  # The FID curve puts the evaluation at its step's kimg and training time.
  assert rows[1]['fid_curve'] == [(0.192, last['time_s'], 250.5)] and rows[0]['fid_curve'] == []
  assert compare.plot_fid(rows, tmp_path / 'fid.png')
  assert iio.imread(tmp_path / 'fid.png').shape[1] > 500
  assert not compare.plot_fid(rows[:1], tmp_path / 'none.png')
  assert not (tmp_path / 'none.png').exists()
  assert '| 250 | 0.21 | 0.125 | 1.5 | 20 vs cifar10:test |' in table[3]
  assert '| n/a | n/a | n/a | n/a | n/a |' in table[2]  # The unevaluated run.

  compare.grids_side_by_side(rows, tmp_path / 'grids.png')
  assert iio.imread(tmp_path / 'grids.png').shape[1] > iio.imread(tmp_path / 'grids.png').shape[0]


def test_a_run_folder_from_before_the_families_compares(two_runs, tmp_path):
  """config.json in the old layout, grids named by epoch: read as the run they were."""
  import shutil
  from pathlib import Path
  old = tmp_path / 'old_run'
  shutil.copytree(two_runs[0], old)
  stored = json.loads((Path(__file__).parent / 'data' / 'config_before_families.json').read_text())
  (old / 'config.json').write_text(json.dumps(stored))
  for i, grid in enumerate(sorted((old / 'samples').glob('step_*.png'))):
    grid.rename(old / 'samples' / f'epoch_{i:04d}.png')
  row = compare.summarize_run(old)
  assert row['G params'] == 1_455_552 and row['grid'].name == 'epoch_0002.png'
