"""gan.compare: the side-by-side table and picture of finished runs."""

import json
import re

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
  assert '| 250 | 0.21 | 0.125 | 1.5 | 20 vs cifar10:test, running statistics |' in table[3]
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


def test_kept_checkpoints_draw_the_curve_and_the_largest_evaluation_fills_the_table(
    two_runs, tmp_path):
  """`gan.evaluate --step` evaluates a kept checkpoint; compare's table takes the evaluation
  with the most samples while its curve keeps to one protocol."""
  import shutil

  from gan import checkpoint, evaluate
  run = tmp_path / 'run'
  shutil.copytree(two_runs[0], run)
  kept = checkpoint.Checkpointer(run / 'checkpoints', max_to_keep=2).all_steps()
  assert len(kept) == 2 and kept[0] < kept[1]
  early = evaluate.evaluate_run(run, 10, 'test', metric_names=['recognisability'],
                                step=kept[0])
  latest = evaluate.evaluate_run(run, 10, 'test', metric_names=['recognisability'])
  assert (early['step'], latest['step']) == tuple(kept)
  assert early['kimg'] < latest['kimg'] and early['g_steps'] == kept[0]
  with pytest.raises(FileNotFoundError, match=re.escape(f'kept steps are {kept}')):
    evaluate.main(['--workdir', str(run), '--num_samples', '10', '--metrics',
                   'recognisability', '--step', str(kept[-1] + 1)])

  def record(step, kimg, fid, num_samples):
    return {'step': step, 'epoch': 1.0, 'kimg': kimg, 'eval/fid': fid, 'eval/kid': fid / 1e3,
            'eval/kid_std': 0.0, 'eval/num_samples': num_samples,
            'eval/reference': 'cifar10:test'}
  with open(run / 'metrics.jsonl', 'a') as f:
    for r in (record(kept[1], 0.2, 90.0, 2000), record(kept[0], 0.1, 120.0, 2000),
              record(kept[1], 0.2, 80.0, 5000)):
      f.write(json.dumps(r) + '\n')
  row = compare.summarize_run(run)
  assert (row['FID'] == 80.0 and
          row['eval samples'] == '5,000 vs cifar10:test, running statistics')
  assert [point[2] for point in row['fid_curve']] == [120.0, 90.0]  # By kimg; 2k only.
  assert row['fid_curve_protocol'] == '2,000 vs cifar10:test, running statistics'
  assert compare.plot_fid([row], tmp_path / 'fid.png')


def test_the_design_column_names_what_each_config_adds():
  from gan.config_files import load_config
  assert compare.design_of(load_config('configs/recap.py')) == 'dcgan, non_saturating'
  assert compare.design_of(load_config('configs/recap.py:all')) == (
      'dcgan, hinge, SN in D, DiffAugment, EMA')
  assert compare.design_of(load_config('configs/wgan_gp.py')) == 'dcgan, wasserstein, GP 10, n_dis 5'
  assert compare.design_of(load_config('configs/sngan_resnet.py')) == 'resnet, hinge, n_dis 5'

