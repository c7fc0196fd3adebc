"""Where the project keeps what it fetches or derives once: the CIFAR-10 download, the FID
Inception's converted weights, each split's FID statistics."""

import os
from pathlib import Path

CACHE_ENV = 'GAN_CACHE_DIR'


def cache_dir() -> Path:
  """`$GAN_CACHE_DIR`, else `~/.cache/gan`."""
  return Path(os.environ.get(CACHE_ENV) or Path.home() / '.cache' / 'gan')
