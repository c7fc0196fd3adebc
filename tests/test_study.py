"""`python -m gan.study`: designs trained at one budget in their own processes, scored by
one protocol, resumed when rerun."""

import json
import os

import pytest

from gan import budget, study, visualize
from gan.metrics import weights

TORCHSCRIPT = os.environ.get('GAN_FID_TORCHSCRIPT', '')
SPECS = ['configs/recap.py:smoke', 'configs/cpu_dcgan.py:smoke']


def test_budgets_parse_into_the_settings_that_stop_a_run():
  assert budget.Budget.parse('150 min cpu').overrides() == [
      'train.time_budget_minutes=150', 'train.time_budget_clock=cpu']
  assert budget.Budget.parse('2.5  min').overrides() == [
      'train.time_budget_minutes=2.5', 'train.time_budget_clock=wall']
  assert budget.Budget.parse('100 epochs').overrides() == ['train.num_epochs=100']
  for bad in ('150', 'ten min', '-1 min', '0 epochs', '1.5 epochs', '3 kimg'):
    with pytest.raises(ValueError, match='Budget'):
      budget.Budget.parse(bad)


def test_names_and_cores():
  assert study.run_name('configs/cpu_dcgan.py:no_ema,diffaug') == 'cpu_dcgan-no_ema+diffaug'
  assert study.run_name('configs/recap.py') == 'recap'
  assert study.parse_cores('0,2-4') == {0, 2, 3, 4}
  with pytest.raises(ValueError, match='cores'):
    study.parse_cores('a-b')


def test_a_command_runs_pinned_to_its_lane(tmp_path):
  core = min(os.sched_getaffinity(0))
  s = study.Study(tmp_path, SPECS[:1], budget.Budget.parse('1 epochs'))
  s._command(['-c', 'import os; print("affinity", sorted(os.sched_getaffinity(0)))'],
             frozenset({core}), tmp_path / 'pinned.log')
  assert f'affinity [{core}]' in (tmp_path / 'pinned.log').read_text()


def test_a_typo_fails_before_anything_trains(tmp_path):
  with pytest.raises(KeyError, match='num_epoch'):
    study.Study(tmp_path, SPECS, budget.Budget.parse('2 epochs'), ['train.num_epoch=3'])
  with pytest.raises(ValueError, match='variant'):
    study.Study(tmp_path, ['configs/recap.py:nope'], budget.Budget.parse('2 epochs'))
  with pytest.raises(ValueError, match='twice'):
    study.Study(tmp_path, SPECS + SPECS[:1], budget.Budget.parse('2 epochs'))
  assert not (tmp_path / 'runs').exists()


def _study(tmp_path, tiny_cifar_dir, **kw):
  lanes = sorted(os.sched_getaffinity(0))[:2]
  return study.Study(tmp_path / 'study', SPECS, budget.Budget.parse('2 epochs'),
                     [f'data.dir={tiny_cifar_dir}'], [frozenset({c}) for c in lanes], **kw)


def _train_commands(tmp_path) -> int:
  return sum(log.read_text().count('$ python train.py')
             for log in (tmp_path / 'study' / 'runs').glob('*.log'))


def test_a_study_trains_each_design_pinned_scores_it_and_resumes(tmp_path, tiny_cifar_dir,
                                                              monkeypatch):
  """Two designs, a lane each: trained to the budget, each kept checkpoint evaluated for the
  curve (FID, when the reference network is at hand) and the last by the table's protocol;
  a larger budget continues each run, an equal one redoes nothing."""
  if TORCHSCRIPT:
    monkeypatch.setenv('GAN_CACHE_DIR', str(tmp_path / 'cache'))
    weights.main(['--torchscript', TORCHSCRIPT])
    kw = dict(curve_every='1 epoch', curve_samples=20, curve_reference='test')
  else:
    kw = dict(curve_every='', metrics='recognisability')
  s = _study(tmp_path, tiny_cifar_dir, num_samples=24, reference='test', live_g=True, **kw)
  s.budget = budget.Budget.parse('1 epochs')
  s.run()
  first = {spec: [r['step'] for r in visualize.read_metrics(s.workdir(spec) / 'metrics.jsonl')
                  if 'G/loss' in r] for spec in SPECS}
  s.budget = budget.Budget.parse('2 epochs')
  s.run()
  out = tmp_path / 'study'
  lanes = json.loads((out / 'lanes.json').read_text())
  assert set(lanes) == {'recap-smoke', 'cpu_dcgan-smoke'}
  for spec in SPECS:
    workdir = s.workdir(spec)
    records = visualize.read_metrics(workdir / 'metrics.jsonl')
    train = [r for r in records if 'G/loss' in r]
    per_epoch = len(first[spec])
    # Continued from the first budget's checkpoint, not restarted, to the second budget.
    assert [r['step'] for r in train] == list(range(1, 2 * per_epoch + 1))
    assert train[-1]['epoch'] == pytest.approx(2)  # The budget, not the config's 100 epochs.
    evals = [(r['step'], r['eval/num_samples'], r['eval/reference']) for r in records
             if 'eval/num_samples' in r and 'eval/g_weights' not in r]
    final = [(per_epoch, 24, 'cifar10:test'), (2 * per_epoch, 24, 'cifar10:test')]
    # cpu_dcgan keeps an EMA: its live G is scored too, by the table's protocol.
    live = [(r['step'], r['eval/num_samples']) for r in records
            if r.get('eval/g_weights') == 'live']
    assert live == ([(per_epoch, 24), (2 * per_epoch, 24)] if 'cpu_dcgan' in spec else [])
    if TORCHSCRIPT:  # The curve: every kept checkpoint once.
      curve = [(step, 20, 'cifar10:test') for step in (per_epoch, 2 * per_epoch)]
      assert sorted(evals) == sorted(curve + final)
      assert all('eval/fid' in r for r in records if 'eval/num_samples' in r)
    else:
      assert evals == final
    assert all(0 <= r['eval/recognisable'] <= 1 for r in records if r.get('eval/num_samples') == 24)
    log = workdir.with_suffix('.log').read_text()
    assert f'(cores {lanes[study.run_name(spec)]})' in log
  table = (out / 'study.md').read_text()
  assert '| recap-smoke | configs/recap.py:smoke |' in table
  assert 'recognisable' in table and '2 epochs' in table
  assert 'python -m gan.study --out' in table
  assert (out / 'study.png').is_file()
  assert (out / 'study_fid.png').is_file() == bool(TORCHSCRIPT)
  rows = json.loads((out / 'study.json').read_text())
  assert [row['run'] for row in rows] == ['recap-smoke', 'cpu_dcgan-smoke',
                                         'cpu_dcgan-smoke (live G)']
  assert rows[1]['design'].endswith('EMA') and not rows[2]['design'].endswith('EMA')
  assert all(row['img/s'] > 0 and row['kimg'] > 0 for row in rows)

  # Rerun at the same budget: nothing trains or evaluates again.
  before = {spec: (s.workdir(spec) / 'metrics.jsonl').read_text() for spec in SPECS}
  commands = _train_commands(tmp_path)
  s.run()
  assert _train_commands(tmp_path) == commands
  assert before == {spec: (s.workdir(spec) / 'metrics.jsonl').read_text() for spec in SPECS}


def test_a_dry_run_prints_the_commands_and_trains_nothing(tmp_path, capsys):
  study.main(['--out', str(tmp_path / 's'), '--budget', '2 min cpu', '--dry_run',
              'configs/recap.py', 'configs/cpu_dcgan.py:no_ema'])
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 2
  assert lines[1].startswith(f'python train.py --config configs/cpu_dcgan.py:no_ema '
                             f'--workdir {tmp_path / "s" / "runs" / "cpu_dcgan-no_ema"}')
  assert '--config.train.time_budget_clock=cpu' in lines[0]
  assert not (tmp_path / 's').exists()
