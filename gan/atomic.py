"""Files replaced whole or not at all: a kill -9 at any moment leaves the old file or the new.

Each write goes to a temporary file beside its target (same folder, so the same file
system), is flushed to disk, and is renamed over the target: POSIX makes the rename
atomic, so no reader or resumed run ever sees half a file.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
  """Yields a temporary path to write `path`'s new content to (with any library's own
  writer: imageio, matplotlib...); renames it over `path` when the block ends without an
  error, removes it otherwise. The temporary name keeps the suffix, for writers that
  choose the format by it."""
  path = Path(path)
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.',
                                       suffix=f'.tmp{path.suffix}')
  os.close(handle)
  temporary = Path(temporary)
  try:
    yield temporary
    with open(temporary, 'rb+') as f:
      os.fsync(f.fileno())
    os.replace(temporary, path)
  finally:
    temporary.unlink(missing_ok=True)


def remove_leftovers(folder: str | Path) -> list[Path]:
  """Removes the temporaries `replacing` left in `folder` when a kill came before its
  rename (never the files they were to replace); returns them."""
  found = [p for p in Path(folder).glob('.*.tmp*') if p.is_file()]
  for path in found:
    path.unlink(missing_ok=True)
  return found


def write_text(path: str | Path, text: str) -> None:
  with replacing(path) as temporary:
    temporary.write_text(text)


class TornFileError(ValueError):
  """A JSON-lines file damaged other than at its end (not by a kill mid-append)."""


def read_json_lines(path: str | Path) -> tuple[list[str], list[dict], bool]:
  """(lines, their records, whether a torn last line was dropped) of a file appended one
  JSON line at a time. A kill mid-append can leave its last line cut short: that line
  is dropped. A bad line anywhere else is damage this cannot explain, and raises."""
  lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
  records = []
  for number, line in enumerate(lines, 1):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError as error:
      if number == len(lines):
        return lines[:-1], records, True
      raise TornFileError(f'{path}, line {number}: not JSON ({error}); only a last line '
                          f'cut short by a kill is dropped on its own.') from error
  return lines, records, False
