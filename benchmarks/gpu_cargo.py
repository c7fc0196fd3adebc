r"""CIFAR-10 and the FID Inception's weights for a machine with no internet, in parts small
enough to travel one per call (the device tool carries at most 64 MiB a call).

  python benchmarks/gpu_cargo.py pack .gpu_cargo          # here: $GAN_CIFAR10_DIR, weights
  python benchmarks/gpu_cargo.py unpack .gpu_cargo/part-* --into /tmp/cargo   # there

`pack` writes `part-0`, `part-1`, ... of at most `--part_mb` MB: a tar of each
`cifar-10-batches-bin` file with its images as one lossless WebP (CIFAR-10's 180 MB in
about 100 MB) and the weights file as it is; `unpack` joins the parts, rebuilds every
file byte for byte, checks each against the SHA-256 recorded at packing, and prints the
two settings to export: GAN_CIFAR10_DIR and GAN_CACHE_DIR (where gan.metrics finds the
converted weights).
"""

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

RECORD = 1 + 32 * 32 * 3  # A label byte, then the R, G and B planes.
WEIGHTS = 'inception-2015-12-05-fid.npz'


def _tiles(records: np.ndarray) -> tuple[bytes, bytes]:
  """One binary batch file's records -> (lossless WebP of its images, its label bytes)."""
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  columns = 100
  rows = -(-len(images) // columns)
  padded = np.zeros((rows * columns, 32, 32, 3), np.uint8)
  padded[:len(images)] = images
  sheet = padded.reshape(rows, columns, 32, 32, 3).transpose(0, 2, 1, 3, 4)
  buffer = io.BytesIO()
  Image.fromarray(sheet.reshape(rows * 32, columns * 32, 3)).save(
      buffer, 'WEBP', lossless=True, quality=100, method=4)
  return buffer.getvalue(), records[:, 0].tobytes()


def _records(webp: bytes, labels: bytes) -> bytes:
  sheet = np.asarray(Image.open(io.BytesIO(webp)).convert('RGB'))
  rows, columns = sheet.shape[0] // 32, sheet.shape[1] // 32
  images = sheet.reshape(rows, 32, columns, 32, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 32, 32, 3)
  images = images[:len(labels)].transpose(0, 3, 1, 2).reshape(len(labels), -1)
  return np.concatenate([np.frombuffer(labels, np.uint8)[:, None], images], axis=1).tobytes()


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(payload)
  archive.addfile(info, io.BytesIO(payload))


def pack(data_dir: Path, weights: Path, out: Path, part_mb: float) -> list[Path]:
  blob, manifest = io.BytesIO(), {}
  with tarfile.open(fileobj=blob, mode='w') as archive:
    for path in sorted(data_dir.glob('*.bin')):
      raw = path.read_bytes()
      manifest[f'cifar-10-batches-bin/{path.name}'] = hashlib.sha256(raw).hexdigest()
      webp, labels = _tiles(np.frombuffer(raw, np.uint8).reshape(-1, RECORD))
      _add(archive, f'cifar-10-batches-bin/{path.name}.webp', webp)
      _add(archive, f'cifar-10-batches-bin/{path.name}.labels', labels)
    raw = weights.read_bytes()
    manifest[f'cache/{WEIGHTS}'] = hashlib.sha256(raw).hexdigest()
    _add(archive, f'cache/{WEIGHTS}', raw)
    _add(archive, 'manifest.json', json.dumps(manifest, indent=1).encode())
  data, size = blob.getvalue(), int(part_mb * 1e6)
  out.mkdir(parents=True, exist_ok=True)
  parts = []
  for i, start in enumerate(range(0, len(data), size)):
    parts.append(out / f'part-{i}')
    parts[-1].write_bytes(data[start:start + size])
  return parts


def unpack(parts: list[Path], into: Path) -> None:
  parts = sorted(parts, key=lambda p: int(p.name.rsplit('-', 1)[1]))
  blob = b''.join(p.read_bytes() for p in parts)
  with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
    members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
  manifest = json.loads(members['manifest.json'])
  for name, digest in manifest.items():
    if name.endswith('.bin'):
      payload = _records(members[f'{name}.webp'], members[f'{name}.labels'])
    else:
      payload = members[name]
    if hashlib.sha256(payload).hexdigest() != digest:
      raise SystemExit(f'{name}: SHA-256 differs from the packed file; pack it again.')
    (into / name).parent.mkdir(parents=True, exist_ok=True)
    (into / name).write_bytes(payload)
  print(f'{len(manifest)} files rebuilt and checked in {into}.\n'
        f'export GAN_CIFAR10_DIR={into / "cifar-10-batches-bin"} GAN_CACHE_DIR={into / "cache"}')


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  packing = commands.add_parser('pack')
  packing.add_argument('out', type=Path)
  packing.add_argument('--data_dir', type=Path, default=os.environ.get('GAN_CIFAR10_DIR'))
  packing.add_argument('--weights', type=Path, default=None,
                       help=f'the converted FID Inception (default: {WEIGHTS} in the cache)')
  packing.add_argument('--part_mb', type=float, default=60.0)
  unpacking = commands.add_parser('unpack')
  unpacking.add_argument('parts', type=Path, nargs='+')
  unpacking.add_argument('--into', type=Path, required=True)
  args = parser.parse_args(argv)
  if args.command == 'pack':
    if not args.data_dir:
      parser.error('--data_dir or $GAN_CIFAR10_DIR: the cifar-10-batches-bin folder.')
    weights = args.weights
    if weights is None:
      sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
      from gan.metrics import weights as gan_weights
      weights = gan_weights.cache_dir() / WEIGHTS
    parts = pack(Path(args.data_dir), Path(weights), args.out, args.part_mb)
    print('\n'.join(f'{p} {p.stat().st_size / 1e6:.1f} MB' for p in parts))
  else:
    unpack(args.parts, args.into)


if __name__ == '__main__':
  main()
