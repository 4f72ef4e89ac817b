"""Get one file of a pinned public source: a GitHub repository at a commit, or a Debian package at a version.

Sources are named as in a corpus list (``repo``, ``commit``, ``path``):

* ``owner/name`` + a 40-hex commit: from a local bare snapshot ``ROOT/<owner>+<name>/repo`` (``git cat-file``) when
  a mirror root is given, else from GitHub (the raw file URL; a Git LFS pointer is followed to its media URL);
* ``debian:<package>`` + a package version: from ``ROOT/debian/<package>_<version>_<arch>.deb`` when a mirror root is
  given and holds it, else ``apt-get download <package>=<version>`` into a cache folder; the file is read from the
  package's data archive (``path`` as installed, without the leading slash).

A ``path`` of the form ``FILE.rcc!/MEMBER`` names a file inside a compiled Qt resource file of the source (see
:mod:`nirnet.data.qt_resources`). Every failure is a :class:`BlobMissing` with a one-line reason; nothing here
decides what to do about it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .qt_resources import QtResourceError, qt_resource_member, read_qt_resources

DEBIAN = "debian:"
RESOURCE_SEPARATOR = "!/"
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class BlobMissing(Exception):
    """The file could not be had; ``str(exc)`` says why in one line."""


class BlobSource:
    """Fetches files of pinned sources; one instance per build (it caches opened Debian packages)."""

    def __init__(self, mirror_root: str | Path | None = None, cache_dir: str | Path | None = None) -> None:
        self.mirror_root = Path(mirror_root) if mirror_root else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._debs: dict[tuple[str, str], tarfile.TarFile] = {}  # each package's data archive, opened once
        self._resources: dict[tuple[str, str, str], dict] = {}  # each Qt resource file, read and parsed once

    def get(self, repo: str, commit: str, path: str) -> bytes:
        container, sep, member = path.partition(RESOURCE_SEPARATOR)
        if sep and container.endswith(".rcc"):
            key = (repo, commit, container)
            try:
                if key not in self._resources:
                    self._resources[key] = read_qt_resources(self.get(repo, commit, container))
                return qt_resource_member(self._resources[key], member)
            except QtResourceError as exc:
                raise BlobMissing(f"{container}: {exc}") from None
        if repo.startswith(DEBIAN):
            return self._debian(repo[len(DEBIAN) :], commit, path)
        if repo.count("/") != 1:
            raise BlobMissing(f"unsupported source {repo!r} (expected owner/name or debian:<package>)")
        if self.mirror_root is not None:
            return self._from_mirror(repo, commit, path)
        return self._from_github(repo, commit, path)

    # ------------------------------------------------------------------ GitHub
    def _from_mirror(self, repo: str, commit: str, path: str) -> bytes:
        base = self.mirror_root / repo.replace("/", "+") / "repo"
        git_dir = base / ".git" if (base / ".git").is_dir() else base
        if not git_dir.is_dir():
            raise BlobMissing(f"no snapshot of {repo} under {self.mirror_root}")
        if shutil.which("git") is None:
            raise BlobMissing("git is not installed (needed to read snapshots)")
        proc = subprocess.run(
            ["git", f"--git-dir={git_dir}", "cat-file", "blob", f"{commit}:{path}"], capture_output=True, check=False
        )
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise BlobMissing(f"{repo}@{commit[:10]}:{path} not in the snapshot ({reason[-1] if reason else 'git'})")
        return proc.stdout

    def _from_github(self, repo: str, commit: str, path: str) -> bytes:
        quoted = urllib.parse.quote(path)
        data = _download(f"https://raw.githubusercontent.com/{repo}/{commit}/{quoted}")
        if data.startswith(LFS_POINTER):  # the repository stores the file in Git LFS: the raw URL gives the pointer
            data = _download(f"https://media.githubusercontent.com/media/{repo}/{commit}/{quoted}")
        return data

    # ------------------------------------------------------------------ Debian
    def _debian(self, package: str, version: str, path: str) -> bytes:
        key = (package, version)
        if key not in self._debs:
            self._debs[key] = _deb_data(self._deb_path(package, version).read_bytes())
        archive = self._debs[key]
        member = path.lstrip("/")
        for name in (f"./{member}", member):
            try:
                info = archive.getmember(name)
            except KeyError:
                continue
            handle = archive.extractfile(info) if info.isfile() else None
            if handle is not None:
                return handle.read()
        raise BlobMissing(f"{package} {version} has no file {member}")

    def _deb_path(self, package: str, version: str) -> Path:
        # apt names files <package>_<version>_<arch>.deb with the epoch's colon written as %3a
        stem = f"{package}_{version.replace(':', '%3a')}_"
        for folder in [p for p in (self.mirror_root and self.mirror_root / "debian", self.cache_dir) if p]:
            found = sorted(folder.glob(f"{stem}*.deb")) if folder.is_dir() else []
            if found:
                return found[0]
        if self.cache_dir is None or shutil.which("apt-get") is None:
            raise BlobMissing(f"no {package}_{version} .deb found and apt-get is not available to download it")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["apt-get", "download", f"{package}={version}"], cwd=self.cache_dir, capture_output=True, check=False
        )
        found = sorted(self.cache_dir.glob(f"{stem}*.deb"))
        if proc.returncode != 0 or not found:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise BlobMissing(f"apt-get download {package}={version} failed ({reason[-1] if reason else 'no file'})")
        return found[0]


def _download(url: str, attempts: int = 3, timeout: float = 60) -> bytes:
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URLs)
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise BlobMissing(f"{url}: not found (404)") from None
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        time.sleep(2**attempt)
    raise BlobMissing(f"{url}: {error}")


def _deb_data(deb: bytes) -> tarfile.TarFile:
    """The data archive of a .deb, opened; files are read from it on demand (a package can hold hundreds of MB).

    A .deb is an ``ar`` archive (``!<arch>`` then 60-byte member headers) holding ``data.tar.{xz,gz,bz2}``."""
    if not deb.startswith(b"!<arch>\n"):
        raise BlobMissing("not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(deb):
        header = deb[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = deb[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise BlobMissing("the package's data is zstd-compressed, which this reader does not support")
            return tarfile.open(fileobj=io.BytesIO(body))
        pos += 60 + size + (size % 2)  # members are padded to an even offset
    raise BlobMissing("the package has no data archive")
