"""The downloader against a local HTTP server on 127.0.0.1 that injects faults."""

import http.server
import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pandas as pd
import pytest
from PIL import Image

from fathom.data.download import Settings, decodes, download


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (seed * 40 % 255, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


class FaultyServer(http.server.ThreadingHTTPServer):
    """GET /<fault>/<name>: 'ok', 'flaky500' (500 once), 'slow' (stalls past the timeout once),
    'truncated' (short body once), 'html' (never an image), 'gone' (404), 'big' (over the cap),
    'stream' (the image in slow chunks, for kill tests)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits = Counter()
        self.lock = threading.Lock()

    def url(self, fault: str, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{fault}/{name}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        fault, name = self.path.strip("/").split("/", 1)
        with self.server.lock:
            self.server.hits[self.path] += 1
            first = self.server.hits[self.path] == 1
        body = png_bytes(len(name))
        if fault == "flaky500" and first or fault == "gone":
            self.send_error(500 if fault == "flaky500" else 404)
            return
        if fault == "slow" and first:
            time.sleep(1.5)
        if fault == "html":
            body = b"<html>rate limited</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 2**20 if fault == "big" else len(body)))
        self.end_headers()
        if fault == "truncated" and first:
            self.wfile.write(body[: len(body) // 2])
            return
        if fault == "stream":  # ten slices, 0.1 s apart: about a second per image
            step = len(body) // 10 + 1
            for start in range(0, len(body), step):
                self.wfile.write(body[start:start + step])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if fault != "big":
            self.wfile.write(body)


def coco(tmp_path, images):
    path = tmp_path / "object_detection" / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": [{"id": n + 1, "file_name": name, "coco_url": url, "width": 24,
                                            "height": 16} for n, (name, url) in enumerate(images)]}))
    return path


FAST = Settings(workers=4, timeout=0.5, attempts=3, backoff=0.01, max_bytes=2**20)


def test_faults_are_retried_and_what_cannot_be_fetched_is_reported(server, tmp_path):
    faults = ["ok", "flaky500", "slow", "truncated", "html", "gone", "big"]
    path = coco(tmp_path, [(f"{f}.png", server.url(f, f"{f}.png")) for f in faults])
    out = tmp_path / "images"
    listed, failures = download(path, out, FAST, progress=False)
    assert listed == 7
    for fault in ("ok", "flaky500", "slow", "truncated"):
        assert decodes(out / f"{fault}.png"), fault
    assert set(failures["file_name"]) == {"html.png", "gone.png", "big.png"}
    errors = failures.set_index("file_name")["error"]
    assert "not a decodable image" in errors["html.png"] and errors["gone.png"] == "HTTP 404"
    assert "cap" in errors["big.png"]
    assert server.hits["/gone/gone.png"] == 1  # a 404 is not retried
    assert server.hits["/html/html.png"] == FAST.attempts
    assert not (out / "html.png").exists() and not (out / "big.png").exists()
    written = pd.read_csv(out / "download_failures.csv")
    assert set(written["file_name"]) == set(failures["file_name"]) and list(written.columns) == [
        "id", "file_name", "url", "error"]
    assert not list(out.glob(".*.tmp"))


def test_names_are_confined_to_the_output_folder(server, tmp_path):
    names = ["../evil.png", str(tmp_path / "abs.png"), "sub/x.png", "..", "good.png"]
    path = coco(tmp_path, [(n, server.url("ok", "x.png")) for n in names] + [("nourl.png", "ftp://x/y.png")])
    out = tmp_path / "data" / "images"
    listed, failures = download(path, out, FAST, progress=False)
    assert listed == 6 and sorted(failures["file_name"]) == sorted(set(names + ["nourl.png"]) - {"good.png"})
    assert sorted(p.name for p in out.iterdir()) == ["download_failures.csv", "good.png"]
    assert not (tmp_path / "data" / "evil.png").exists() and not (tmp_path / "abs.png").exists()
    assert not (out / "sub").exists()


def test_resume_skips_complete_files_and_refetches_partial_ones(server, tmp_path):
    path = coco(tmp_path, [(f"{n}.png", server.url("ok", f"{n}.png")) for n in range(4)])
    out = tmp_path / "images"
    out.mkdir()
    (out / "0.png").write_bytes(png_bytes(5))  # complete: kept
    (out / "1.png").write_bytes(png_bytes(5)[:30])  # partial, as the competition's script leaves them
    (out / ".2.png.abc123.tmp").write_bytes(b"half")  # a killed run's temporary file
    listed, failures = download(path, out, FAST, progress=False)
    assert listed == 4 and failures.empty
    assert server.hits["/ok/0.png"] == 0 and server.hits["/ok/1.png"] == 1
    assert all(decodes(out / f"{n}.png") for n in range(4)) and not list(out.glob(".*.tmp"))
    download(path, out, FAST, progress=False)
    assert sum(server.hits.values()) == 3  # the second run fetched nothing


@pytest.mark.slow
def test_a_download_killed_mid_file_resumes_to_complete_images(server, tmp_path):
    images = [(f"s{n}.png", server.url("stream", f"s{n}.png")) for n in range(4)]
    path = coco(tmp_path, images)
    out = tmp_path / "images"
    command = [sys.executable, "-m", "fathom", "download", "--coco", str(path), "--out", str(out), "--workers", "2",
               "--timeout", "5", "--backoff", "0.01"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while sum(server.hits.values()) < 2 and time.time() < deadline:  # both workers are mid-transfer
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list(out.glob("*.png"))) < len(images)  # killed before the end
    for file in out.glob("*.png"):
        assert decodes(file), f"{file.name} looks complete but is not"
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "4 of 4 images complete; 0 failed" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == [name for name, _ in images]
    assert all(decodes(out / name) for name, _ in images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "object_detection"]
