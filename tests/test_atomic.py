"""Files a kill -9 cannot leave half written, and the metrics file read back after one."""

import json
import struct

import pytest

from gan import atomic, logs, visualize


def test_a_replacement_is_whole_or_not_at_all(tmp_path):
  path = tmp_path / 'config.json'
  atomic.write_text(path, 'old\n')
  with pytest.raises(RuntimeError):
    with atomic.replacing(path) as temporary:
      temporary.write_text('half')
      raise RuntimeError('killed mid-write')
  assert path.read_text() == 'old\n'
  assert [p.name for p in tmp_path.iterdir()] == ['config.json']  # No temporary left.
  with atomic.replacing(tmp_path / 'grid.png') as temporary:
    assert temporary.suffix == '.png' and temporary.parent == tmp_path  # Same file system.
    temporary.write_bytes(b'png')
  assert (tmp_path / 'grid.png').read_bytes() == b'png'


def _metrics(path, steps, torn=''):
  path.write_text(''.join(json.dumps({'step': s, 'time_s': float(s)}) + '\n' for s in steps) +
                  torn)


def test_a_torn_last_line_is_dropped_and_other_damage_raises(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  _metrics(path, [1, 2, 3], torn='{"step": 4, "ti')
  lines, records, torn = atomic.read_json_lines(path)
  assert torn and [r['step'] for r in records] == [1, 2, 3] and len(lines) == 3
  assert [r['step'] for r in visualize.read_metrics(path)] == [1, 2, 3]
  path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
  with pytest.raises(atomic.TornFileError, match='line 2: not JSON'):
    atomic.read_json_lines(path)


def test_resuming_after_a_kill_mid_append_keeps_each_step_once(tmp_path, capsys):
  path = tmp_path / 'metrics.jsonl'
  _metrics(path, [1, 2, 3, 4], torn='{"step": 5, "ti')
  writer = logs.MetricWriter(tmp_path, resume_step=3, tensorboard=False)
  assert 'dropped the last line' in capsys.readouterr().out
  assert writer.resumed_seconds == 3.0
  for step in (4, 5):
    writer.write({'step': step, 'time_s': float(step)})
  writer.close()
  assert [r['step'] for r in visualize.read_metrics(path)] == [1, 2, 3, 4, 5]


def _events(path):
  """The events of a TensorBoard file (TFRecord: length, its CRC, data, the data's CRC)."""
  from tensorboardX.proto import event_pb2
  data, events, at = path.read_bytes(), [], 0
  while at < len(data):
    (length,) = struct.unpack('<Q', data[at:at + 8])
    events.append(event_pb2.Event.FromString(data[at + 12:at + 12 + length]))
    at += 12 + length + 4
  return events


def test_tensorboard_purges_the_steps_a_resume_writes_again(tmp_path):
  first = logs.MetricWriter(tmp_path, resume_step=0, tensorboard=True)
  for step in range(1, 6):
    first.write({'step': step, 'D/loss': 1.0})
  first.close()
  resumed = logs.MetricWriter(tmp_path, resume_step=3, tensorboard=True)
  resumed.write({'step': 4, 'D/loss': 2.0})
  resumed.close()
  files = sorted((tmp_path / 'tensorboard').iterdir(), key=lambda p: (p.stat().st_mtime_ns, p))
  events = [e for path in files for e in _events(path) if e.HasField('summary') or
            e.HasField('session_log')]
  seen = [('start', e.step) if e.HasField('session_log') else ('scalar', e.step)
          for e in events]
  # A START at the resumed step: TensorBoard drops the events written before it from that
  # step on, so steps 4 and 5 of the first invocation do not show twice.
  assert seen == [('scalar', s) for s in range(1, 6)] + [('start', 4), ('scalar', 4)]
  assert all(e.session_log.status == 1 for e in events if e.HasField('session_log'))


def test_the_temporaries_of_a_killed_write_are_removed_on_restart(tmp_path):
  target = tmp_path / 'curves.png'
  target.write_bytes(b'whole')
  leftover = tmp_path / '.curves.png.x1y2z3.tmp.png'  # As a kill before the rename leaves it.
  leftover.write_bytes(b'half')
  assert atomic.remove_leftovers(tmp_path) == [leftover]
  assert not leftover.exists() and target.read_bytes() == b'whole'
