"""The real download code against a local HTTP server on 127.0.0.1 serving ../shared/data/frappe:
the original validation and test files verify, the reconstructed train file is rejected by its
checksum, and a broken transfer leaves nothing in the cache."""
import functools
import http.server
import threading

import pytest

from nfm_numpy import datasets as D


@pytest.fixture
def server(frappe_dir):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Broken(Quiet):
        """Announces the whole file, sends a tenth of it, hangs up."""
        def do_GET(self):
            data = (frappe_dir / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 10])
            self.wfile.flush()
            self.close_connection = True

    servers = {}
    for name, handler in (("good", Quiet), ("broken", Broken)):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                functools.partial(handler, directory=str(frappe_dir)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers[name] = (f"http://127.0.0.1:{httpd.server_address[1]}", httpd)
    yield {k: v[0] for k, v in servers.items()}
    for _, httpd in servers.values():
        httpd.shutdown()
        httpd.server_close()


def test_original_files_verify(server, tmp_path):
    blobs = D.BLOB_IDS["frappe"]
    for split in ("validation", "test"):
        dest = tmp_path / f"frappe.{split}.libfm"
        D.download_file(f"{server['good']}/frappe.{split}.libfm", dest, blobs[split], progress=False)
        assert D.git_blob_id(dest) == blobs[split]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frappe.test.libfm", "frappe.validation.libfm"]


def test_reconstructed_train_is_rejected_and_not_kept(server, tmp_path):
    with pytest.raises(D.ChecksumError, match="checksum mismatch"):
        D.fetch("frappe", directory=tmp_path, base_url=server["good"], progress=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "frappe.train.libfm" not in names and not any(n.endswith(".part") for n in names)


def test_broken_transfer_leaves_no_file(server, tmp_path):
    with pytest.raises(OSError, match="broke off"):
        D.download_file(f"{server['broken']}/frappe.test.libfm", tmp_path / "frappe.test.libfm",
                        D.BLOB_IDS["frappe"]["test"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(OSError, match=r"Offline\? Put frappe.train.libfm.*in " + str(tmp_path)):
        D.fetch("frappe", directory=tmp_path, base_url="http://127.0.0.1:9", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NFM_NUMPY_DATA", str(tmp_path))
    assert D.cache_dir() == tmp_path
    monkeypatch.delenv("NFM_NUMPY_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.cache_dir() == tmp_path / "xdg" / "nfm_numpy"
