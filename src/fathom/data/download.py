"""`python -m fathom download`: fetch every image of a COCO file from its `coco_url`, safely and resumably.

- bounded concurrency (threads), a timeout per request, retries with exponential backoff;
- a response is read up to `max_bytes` only, and kept only when it decodes as an image;
- each file is written to a temporary name in the output folder and renamed when complete, so an
  interrupted run never leaves a file that looks complete; leftovers of a killed run are removed;
- resume: a file already at its final name is skipped when it decodes (a partial file left by other
  tools does not, and is fetched again);
- names are confined to the output folder: a `file_name` with a folder part, `..` or an absolute path
  is refused (listed as a failure), never written;
- failures (id, file_name, url, error) go to `<out>/download_failures.csv`; the summary names them.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pandas as pd
from PIL import Image
from fathom.progress import progress as progress_bar

from fathom.atomic import atomic_path, write_csv
from fathom.data.layout import read_json
from fathom.errors import DataError

log = logging.getLogger(__name__)
FAILURES_CSV = "download_failures.csv"
TEMP_GLOB = ".*.tmp"  # fathom.atomic's temporary names


@dataclass(frozen=True)
class Settings:
    workers: int = 16
    timeout: float = 30.0  # seconds per request (connect and each read)
    attempts: int = 4
    backoff: float = 1.0  # seconds before the 2nd attempt; doubles after each failure
    max_bytes: int = 64 * 2**20  # a 1920x1080 PNG is a few MB


@dataclass(frozen=True)
class Job:
    id: str
    file_name: str
    url: str


def read_jobs(coco_path: Path) -> tuple[list[Job], list[dict]]:
    """(downloadable images, refused rows with their reason) from a COCO file's 'images' list."""
    jobs, refused = [], []
    for n, image in enumerate(read_json(coco_path)["images"]):
        image = image if isinstance(image, dict) else {}
        name, url = image.get("file_name"), image.get("coco_url")
        reason = None
        if not isinstance(name, str) or not name:
            reason = "no file_name"
        elif Path(name).name != name or name in (".", "..") or "\\" in name:
            reason = "file_name must be a plain file name (no folder, '..' or absolute path)"
        elif not isinstance(url, str) or not url.startswith(("http://", "https://")):
            reason = "no http(s) coco_url"
        row = Job(str(image.get("id", f"images[{n}]")), str(name), str(url))
        if reason:
            refused.append({"id": row.id, "file_name": row.file_name, "url": row.url, "error": reason})
        else:
            jobs.append(row)
    return jobs, refused


def decodes(data_or_path) -> bool:
    """True when the bytes (or file) are a complete image: fully decoded, not just the header."""
    try:
        source = BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
        with Image.open(source) as image:
            image.load()
        return True
    except Exception:  # PIL raises many types for broken data
        return False


def fetch(url: str, settings: Settings) -> bytes:
    """The body of `url`; raises on HTTP errors, timeouts, short or oversized bodies."""
    request = urllib.request.Request(url, headers={"User-Agent": "fathom-downloader"})
    with urllib.request.urlopen(request, timeout=settings.timeout) as response:
        expected = response.headers.get("Content-Length")
        if expected is not None and int(expected) > settings.max_bytes:
            raise ValueError(f"response of {int(expected)} bytes exceeds the {settings.max_bytes}-byte cap")
        body = response.read(settings.max_bytes + 1)
    if len(body) > settings.max_bytes:
        raise ValueError(f"response exceeds the {settings.max_bytes}-byte cap")
    if expected is not None and len(body) != int(expected):
        raise ValueError(f"truncated body: {len(body)} of {expected} bytes")
    return body


def download_one(job: Job, out: Path, settings: Settings) -> str | None:
    """Fetch one image into out/<file_name>; None on success (or already complete), else the last error."""
    target = out / job.file_name
    if target.is_file() and decodes(target):
        return None
    error = "not attempted"
    for attempt in range(settings.attempts):
        if attempt:
            time.sleep(settings.backoff * 2 ** (attempt - 1))
        try:
            body = fetch(job.url, settings)
        except urllib.error.HTTPError as err:
            error = f"HTTP {err.code}"
            if 400 <= err.code < 500 and err.code not in (408, 429):
                break  # the file is not there: retrying will not help
            continue
        except (OSError, ValueError) as err:  # timeouts, resets, short or oversized bodies
            error = f"{err.__class__.__name__}: {err}"[:200]
            continue
        if not decodes(body):
            error = f"not a decodable image ({len(body)} bytes)"
            continue
        with atomic_path(target) as tmp:
            tmp.write_bytes(body)
        return None
    return error


def download(coco_path: Path, out: Path, settings: Settings = Settings(), progress: bool = True
             ) -> tuple[int, pd.DataFrame]:
    """Download every image of `coco_path` into `out`; returns (images listed, failures (also in a CSV))."""
    jobs, refused = read_jobs(coco_path)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(TEMP_GLOB):  # temporary files of a killed run
        leftover.unlink(missing_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        errors = list(progress_bar(pool.map(lambda job: download_one(job, out, settings), jobs), desc="download",
                                   total=len(jobs), unit="img", enabled=progress))
    failed = refused + [{"id": j.id, "file_name": j.file_name, "url": j.url, "error": e}
                        for j, e in zip(jobs, errors) if e is not None]
    failures = pd.DataFrame(failed, columns=["id", "file_name", "url", "error"])
    report = out / FAILURES_CSV
    if len(failures):
        write_csv(failures, report)
    elif report.is_file():
        report.unlink()  # an earlier run's failures are all fixed
    return len(jobs) + len(refused), failures


def check_settings(settings: Settings) -> Settings:
    for key in ("workers", "attempts", "max_bytes"):
        if getattr(settings, key) < 1:
            raise DataError("command line", f"--{key.replace('_', '-')} must be at least 1")
    if settings.timeout <= 0 or settings.backoff < 0:
        raise DataError("command line", "--timeout must be positive and --backoff not negative")
    return settings
