"""The TFDS-free download: an archive served from localhost (tests never go online),
verified by size and SHA-256, cached, and never kept half-done."""

import hashlib
import http.server
import io
import tarfile
import threading

import ml_collections
import numpy as np
import pytest

from gan import data, download
from tests.conftest import write_binary_split


@pytest.fixture
def archive(tmp_path):
  """(bytes of a CIFAR-10-layout .tar.gz of tiny splits, the train split written)."""
  folder = tmp_path / 'src' / 'cifar-10-batches-bin'
  train = write_binary_split(folder, 'train', per_file=4, seed=0)
  write_binary_split(folder, 'test', per_file=4, seed=10)
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
    tar.add(folder, arcname='cifar-10-batches-bin')
  return buffer.getvalue(), train


class _Handler(http.server.BaseHTTPRequestHandler):
  def do_GET(self):
    body = self.server.body[:self.server.cut] if self.server.cut else self.server.body
    self.server.requests += 1
    self.send_response(200)
    self.send_header('Content-Length', str(len(self.server.body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture
def server():
  httpd = http.server.HTTPServer(('127.0.0.1', 0), _Handler)
  httpd.body, httpd.cut, httpd.requests = b'', 0, 0
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv('GAN_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.delenv(data.ENV_DIR, raising=False)
  return tmp_path / 'cache'


def _serve(server, monkeypatch, body, cut=0):
  server.body, server.cut = body, cut
  monkeypatch.setenv(download.URL_ENV, f'http://127.0.0.1:{server.server_port}/c.tar.gz')
  monkeypatch.setattr(download, 'SIZE', len(body))
  monkeypatch.setattr(download, 'SHA256', hashlib.sha256(body).hexdigest())


def _config(source):
  return ml_collections.ConfigDict({'dataset': 'cifar10', 'source': source, 'dir': '',
                                    'tfds_data_dir': '', 'split': 'train', 'num_examples': 0})


def test_download_verifies_caches_and_reads(archive, server, cache, monkeypatch):
  body, (images, labels) = archive
  _serve(server, monkeypatch, body)
  got_images, got_labels = data.load(_config('download'))
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  assert (cache / 'cifar-10-binary.tar.gz').read_bytes() == body
  assert not list(cache.glob('*.part')) and not list(cache.glob('.extract-*'))
  # Cached: read again without the network, also by 'auto' when no folder is named.
  server.body = b'gone'
  np.testing.assert_array_equal(data.load(_config('auto'))[0], images)
  assert server.requests == 1


@pytest.mark.parametrize('damage', ['checksum', 'cut'])
def test_a_wrong_or_cut_download_leaves_nothing_that_passes_for_data(
    archive, server, cache, monkeypatch, damage):
  body, _ = archive
  _serve(server, monkeypatch, body, cut=len(body) // 2 if damage == 'cut' else 0)
  if damage == 'checksum':
    monkeypatch.setattr(download, 'SHA256', '0' * 64)
  with pytest.raises(data.DataError, match='(not the official archive|Could not download)'):
    data.load(_config('download'))
  assert sorted(p.name for p in cache.iterdir()) == []  # No .part, no archive, no folder.
  assert download.cached_folder() is None


def test_offline_fails_at_once_with_the_way_out(cache, monkeypatch):
  monkeypatch.setenv(download.URL_ENV, 'http://127.0.0.1:9/cifar.tar.gz')  # Nothing listens.
  with pytest.raises(data.DataError, match=r'Could not download CIFAR-10 .*offline\? Point '
                                           r'\$GAN_CIFAR10_DIR'):
    data.load(_config('download'))


def test_auto_without_a_folder_downloads_when_tfds_has_no_cifar10(
    archive, server, cache, monkeypatch, tmp_path, capsys):
  """The main command on a fresh machine with internet and no TensorFlow."""
  body, (images, _) = archive
  _serve(server, monkeypatch, body)
  config = _config('auto')
  config.tfds_data_dir = str(tmp_path / 'empty_tfds')  # Nothing prepared there.
  np.testing.assert_array_equal(data.load(config)[0], images)
  assert 'TFDS has no prepared cifar10' in capsys.readouterr().out
  assert server.requests == 1
