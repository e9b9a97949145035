"""``bcdet data download`` against a real HTTP server on 127.0.0.1 serving zips built here."""
from __future__ import annotations

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bcdet_helpers.research.cli import main
from bcdet_helpers.data import download as dl
from bcdet_helpers.data.check import check_dataset
from bcdet_helpers.errors import BcdetError
from fakebusi import make_busi


def _zip_folder(folder: Path, prefix: str = "", macosx: bool = False) -> bytes:
    """Zip ``folder`` as ``<prefix><folder.name>/...`` (how the published zips are laid out)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            arc = prefix + str(f.relative_to(folder.parent))
            zf.write(f, arc)
            if macosx and f.is_file():
                zf.writestr(f"__MACOSX/{prefix}{f.relative_to(folder.parent).parent}/._{f.name}", b"x")
    return buf.getvalue()


class _Server:
    """Serves ``files`` (path -> bytes); 404 for anything else; counts requests.

    ``/short/<name>`` announces the full length but sends only half, like a dropped connection.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                short = self.path.startswith("/short/")
                body = server.files.get(self.path.replace("/short/", "/", 1))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if short else body)
                if short:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def busi_zip(tmp_path_factory) -> bytes:
    return _zip_folder(make_busi(tmp_path_factory.mktemp("src"), 4))


@pytest.fixture
def server(busi_zip):
    srv = _Server()
    srv.files["/Dataset_BUSI_with_GT.zip"] = busi_zip
    yield srv
    srv.close()


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_good_zip_is_extracted_checked_and_in_place(server, tmp_path):
    dest = tmp_path / "data"
    # the fake BUSI has 4 images a class, far fewer than the real 780: allowed here on purpose
    got = dl.download_busi(dest=dest, url=server.url("/Dataset_BUSI_with_GT.zip"), allow_incomplete=True)
    assert got == (dest / "Dataset_BUSI_with_GT").resolve()
    report = check_dataset(got)
    assert report.ok and report.images == {"benign": 4, "malignant": 4, "normal": 4}
    assert report.masks == {"benign": 4, "malignant": 4, "normal": 4}
    # no temporary folder or zip left beside or inside the destination
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert [p.name for p in dest.iterdir()] == ["Dataset_BUSI_with_GT"]


def test_nested_zip_with_macosx_folder_and_env_url(server, tmp_path, monkeypatch, busi_zip):
    src = make_busi(tmp_path / "src", 3)
    server.files["/nested.zip"] = _zip_folder(src, prefix="BUSI_v1/", macosx=True)
    monkeypatch.setenv("BCDET_BUSI_URL", server.url("/nested.zip"))
    dest = tmp_path / "data"
    got = dl.download_busi(dest=dest, allow_incomplete=True)
    assert server.requests == ["/nested.zip"]
    assert got == (dest / "Dataset_BUSI_with_GT").resolve()
    assert check_dataset(got).images["normal"] == 3


def test_truncated_zip_leaves_destination_untouched(server, tmp_path, busi_zip):
    server.files["/cut.zip"] = busi_zip[: len(busi_zip) // 2]
    dest = tmp_path / "data"
    before = _listing(tmp_path)
    with pytest.raises(BcdetError) as err:
        dl.download_busi(dest=dest, url=server.url("/cut.zip"))
    msg = str(err.value)
    assert "not a complete zip" in msg and "Nothing was written" in msg
    assert "kaggle" in msg.lower()  # says how to get it by hand
    assert not dest.exists()
    assert _listing(tmp_path) == before


def test_connection_dropped_midway(server, tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "keep.txt").write_text("user file")
    with pytest.raises(BcdetError, match="Download failed"):
        dl.download_busi(dest=dest, url=server.url("/short/Dataset_BUSI_with_GT.zip"), timeout=10)
    assert _listing(dest) == ["keep.txt"]


def test_404_explains_how_to_get_it_by_hand(server, tmp_path, capsys):
    dest = tmp_path / "data"
    url = server.url("/missing.zip")
    with pytest.raises(BcdetError) as err:
        dl.download_busi(dest=dest, url=url)
    msg = str(err.value)
    assert "HTTP 404" in msg
    assert "scholar.cu.edu.eg" in msg and "kaggle.com" in msg  # where to get the zip
    assert str(dest / "Dataset_BUSI_with_GT") in msg  # where to put it
    assert not dest.exists()
    # the CLI prints it without a traceback
    assert main(["data", "download", "--dest", str(dest), "--url", url]) == 2
    captured = capsys.readouterr()
    assert "HTTP 404" in captured.err and "Traceback" not in captured.err


def test_unreachable_server(tmp_path):
    with pytest.raises(BcdetError, match="could not fetch"):
        dl.download_busi(dest=tmp_path / "data", url="http://127.0.0.1:9/busi.zip", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_zip_without_busi_layout(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photos/cat.png", b"meow")
    server.files["/other.zip"] = buf.getvalue()
    with pytest.raises(BcdetError, match="does not contain a BUSI folder"):
        dl.download_busi(dest=tmp_path / "data", url=server.url("/other.zip"))
    assert list(tmp_path.iterdir()) == []


def test_zip_failing_the_check_is_not_installed(server, tmp_path):
    src = make_busi(tmp_path / "src", 3)
    for f in (src / "normal").iterdir():
        f.unlink()
    (src / "normal").rmdir()
    server.files["/incomplete.zip"] = _zip_folder(src)
    dest = tmp_path / "data"
    with pytest.raises(BcdetError, match="failed the check"):
        dl.download_busi(dest=dest, url=server.url("/incomplete.zip"))
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_already_present_means_no_download(server, tmp_path, capsys):
    existing = make_busi(tmp_path / "data", 3)
    got = dl.download_busi(dest=tmp_path / "data", url=server.url("/Dataset_BUSI_with_GT.zip"))
    assert got == existing.resolve()
    assert server.requests == []
    assert "already present" in capsys.readouterr().out


def test_force_replaces_an_existing_copy(server, tmp_path):
    existing = make_busi(tmp_path / "data", 3)
    got = dl.download_busi(dest=tmp_path / "data", url=server.url("/Dataset_BUSI_with_GT.zip"),
                           force=True, allow_incomplete=True)
    assert got == existing.resolve()
    assert server.requests == ["/Dataset_BUSI_with_GT.zip"]
    assert check_dataset(got).images["benign"] == 4  # the served copy, not the old 3-per-class one
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["Dataset_BUSI_with_GT"]


def test_ctrl_c_leaves_nothing_behind(server, tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_unpack", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dl.download_busi(dest=tmp_path / "data", url=server.url("/Dataset_BUSI_with_GT.zip"))
    assert list(tmp_path.iterdir()) == []


def test_file_url_for_a_zip_fetched_by_hand(tmp_path, busi_zip):
    zip_path = tmp_path / "Dataset_BUSI_with_GT.zip"
    zip_path.write_bytes(busi_zip)
    got = dl.download_busi(dest=tmp_path / "data", url=zip_path.as_uri(), allow_incomplete=True)
    assert check_dataset(got).ok


def test_a_zip_smaller_than_busi_is_refused_unless_allowed(server, tmp_path, capsys):
    dest = tmp_path / "data"
    url = server.url("/Dataset_BUSI_with_GT.zip")
    with pytest.raises(BcdetError) as err:
        dl.download_busi(dest=dest, url=url)
    msg = str(err.value)
    assert "benign 4 of 437" in msg and "--allow-incomplete" in msg and "Nothing was written" in msg
    printed = capsys.readouterr().out  # says one thing (issue #16): not "OK -- usable", then a refusal
    assert "Result: OK" not in printed and "Result: NOT INSTALLED" in printed
    assert list(tmp_path.iterdir()) == []
    assert main(["data", "download", "--dest", str(dest), "--url", url, "--allow-incomplete"]) == 0
    assert check_dataset(dest / "Dataset_BUSI_with_GT").images["normal"] == 4


def test_a_failed_download_removes_the_folders_it_created(tmp_path):
    dest = tmp_path / "new" / "nested" / "data"
    with pytest.raises(BcdetError, match="could not fetch"):
        dl.download_busi(dest=dest, url="http://127.0.0.1:9/busi.zip", timeout=5)
    assert list(tmp_path.iterdir()) == []  # not even tmp_path/new
