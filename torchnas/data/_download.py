"""Downloads of dataset files: mirrors tried in order, a checksum per file, a cache folder.

A file is written under a temporary name beside its place and renamed there only once its
checksum matches, so a cache never holds a partial or damaged file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from torchnas._util.errors import DataError

__all__ = ["TIMEOUT", "digest_of", "fetch"]

log = logging.getLogger("torchnas")

#: Seconds to wait for a mirror before trying the next.
TIMEOUT = 60.0

_CHUNK = 1 << 20
_NAMES = {"md5": "MD5", "sha256": "SHA-256"}


def _hash(algorithm: str) -> hashlib._Hash:
    return hashlib.new(algorithm, usedforsecurity=False)


def fetch(folder: Path, mirrors: Sequence[str], digests: Mapping[str, str],
          algorithm: str = "sha256") -> list[Path]:
    """Make sure every file of ``digests`` is in ``folder`` with its checksum; download the
    others (a damaged cached file is downloaded again).

    Args:
        folder: Where the files live (created if missing).
        mirrors: Base URLs tried in order for each missing or damaged file.
        digests: Expected hex digest by file name.
        algorithm: ``"md5"`` or ``"sha256"``.

    Returns:
        The paths of the files, in the order of ``digests``.

    Raises:
        DataError: When no mirror serves a file with the expected checksum; the message names
            the file, its expected checksum, every URL tried and why it failed.
    """
    paths = []
    for filename, digest in digests.items():
        path = folder / filename
        if not (path.is_file() and digest_of(path, algorithm) == digest.lower()):
            _download(path, mirrors, digest.lower(), algorithm)
        paths.append(path)
    return paths


def _download(path: Path, mirrors: Sequence[str], digest: str, algorithm: str) -> None:
    """Fetch ``path.name`` from the first mirror that serves it with checksum ``digest``."""
    name = _NAMES.get(algorithm, algorithm)
    path.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + path.name
        log.info("downloading %s", url)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                got, size = _copy_url(url, out, algorithm)
            if got == digest:
                os.replace(tmp, path)
                return
            failures.append(f"{url} ({size} bytes with {name} {got}: truncated or corrupted)")
        except urllib.error.HTTPError as e:
            failures.append(f"{url} (HTTP {e.code} {e.reason})")
        except (urllib.error.URLError, OSError, ValueError) as e:  # ValueError: a bad URL
            failures.append(f"{url} ({getattr(e, 'reason', None) or e})")
        finally:
            Path(tmp).unlink(missing_ok=True)
    tried = "; ".join(failures) or "no mirrors given"
    raise DataError(f"could not download {path.name} with the expected {name} {digest} from any "
                    f"mirror: {tried}. Put a correct copy at {path} to skip the download.")


def _copy_url(url: str, out: BinaryIO, algorithm: str) -> tuple[str, int]:
    """Stream ``url`` into ``out``; return the hex digest and the size of the bytes."""
    h = _hash(algorithm)
    size = 0
    request = urllib.request.Request(url, headers={"User-Agent": "torchnas"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        while chunk := response.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return h.hexdigest(), size


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file at ``path``."""
    h = _hash(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
