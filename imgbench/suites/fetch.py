"""Find a published data folder: a local copy, the cache, or a download from the official source.

Published suites are never copied into the repository. A task YAML names the upstream files and
the official URL; this module finds them, in order, under IMGBENCH_DATA_DIR / `--data-dir`
(laid out as upstream, one subfolder per suite), in the cache (IMGBENCH_CACHE, else the platform
cache folder), or downloads them into the cache. Downloads honour the standard proxy variables,
use a short socket timeout and are refused outright when IMGBENCH_OFFLINE or HF_HUB_OFFLINE is set
(DESIGN §10), so an offline machine gets a clear message naming the URL and the exact path to
place the file at, in seconds rather than after a long hang.

Content is verified by the caller (a checksum over parsed records), so a faithful mirror or a
re-export with other line endings passes and changed data fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imgbench.errors import MissingFiles, UserError
from imgbench.needs import Need, note
from imgbench.util.hub import OFFLINE_VARS, offline

logger = logging.getLogger(__name__)

DATA_DIR_VAR = "IMGBENCH_DATA_DIR"
CACHE_VAR = "IMGBENCH_CACHE"
TIMEOUT_VAR = "IMGBENCH_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT_S = 5.0
"""Per socket operation (connect, each read): short, so an unreachable source fails fast."""


@dataclass(frozen=True)
class Remote:
    """Upstream files of one data folder and where they are published."""

    what: str
    """Who needs the files, for messages (e.g. "task 'drawbench'")."""
    data_dir: str
    """Folder name under the data dir and the cache (the upstream layout lives inside it)."""
    files: tuple[str, ...]
    """Upstream file names inside the folder; a name ending in '/' is a whole folder."""
    url: str | None = None
    """One file's URL; a template with '{file}' for several; or an archive URL with '#folder'."""


@dataclass(frozen=True)
class Located:
    """A folder holding every file of a Remote, and how it was found."""

    folder: Path
    origin: str
    """'data dir', 'cache' or 'downloaded' (shown in checksum errors and recorded per run)."""

    def describe(self) -> str:
        return f"{self.folder} ({self.origin})"


class DataUnavailable(MissingFiles):
    """Files missing from the local copy, or not downloadable right now (offline, network or source down): a
    fixable absence, which `imgbench validate` reports as a note, unlike damaged or changed data (a problem)."""


def data_root() -> Path | None:
    """IMGBENCH_DATA_DIR (set by `--data-dir` too); a value that is not a folder is an error, not ignored."""
    value = os.environ.get(DATA_DIR_VAR, "").strip()
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise UserError(f"the data folder {root} ({DATA_DIR_VAR} or --data-dir) does not exist or is not a "
                        f"folder; point it at a folder with one subfolder per suite, laid out as upstream.")
    return root


def cache_root() -> Path:
    """Where downloads go: $IMGBENCH_CACHE/suites, else the platform's user cache folder."""
    value = os.environ.get(CACHE_VAR, "").strip()
    if value:
        return Path(value).expanduser() / "suites"
    import platformdirs

    return Path(platformdirs.user_cache_dir("imgbench")) / "suites"


@contextlib.contextmanager
def data_dir_override(path: str | None) -> Iterator[None]:
    """`--data-dir DIR` for the duration of one command (restored afterwards, so tests do not leak)."""
    if not path:
        yield
        return
    old = os.environ.get(DATA_DIR_VAR)
    os.environ[DATA_DIR_VAR] = str(Path(path).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(DATA_DIR_VAR, None)
        else:
            os.environ[DATA_DIR_VAR] = old


def _present(folder: Path, name: str) -> bool:
    path = folder / name
    return path.is_dir() and any(path.iterdir()) if name.endswith("/") else path.is_file()


def _archive_parts(url: str) -> tuple[str, str] | None:
    """(download URL, folder inside the archive) for archive URLs such as GitHub codeload tarballs."""
    base, _, fragment = url.partition("#")
    path = urllib.parse.urlparse(base).path
    if base.endswith((".tar.gz", ".tgz")) or "/tar.gz/" in path:
        return base, fragment.strip("/")
    return None


def file_url(remote: Remote, name: str) -> str:
    """The URL a single upstream file is downloaded from (for archives: the archive itself)."""
    if not remote.url:
        raise UserError(f"{remote.what}: no official URL is recorded for {name!r}; place a copy at "
                        f"{_target_hint(remote, name)}.")
    if "{file}" in remote.url:
        return remote.url.replace("{file}", urllib.parse.quote(name))
    archive = _archive_parts(remote.url)
    return archive[0] if archive else remote.url


def _target_hint(remote: Remote, name: str) -> str:
    """The exact path a user can place a file at: under the data dir if one is set, else in the cache."""
    try:
        root = data_root()
    except UserError:
        root = None
    return str((root if root is not None else cache_root()) / remote.data_dir / name)


def _manual_instructions(remote: Remote, missing: list[str]) -> str:
    archive = _archive_parts(remote.url or "")
    lines = []
    for name in missing:
        source = file_url(remote, name) if remote.url else "(no URL recorded)"
        if archive:
            inner = f"{archive[1]}/{name}" if archive[1] else name
            lines.append(f"download {source}, take {inner!r} from it and place it at {_target_hint(remote, name)}")
        else:
            lines.append(f"download {source} and place it at {_target_hint(remote, name)}")
    return "; ".join(lines)


def locate(remote: Remote) -> Located:
    """A folder with every file of `remote`: data dir, else cache, else downloaded into the cache."""
    located = _locate(remote)
    note(Need("suite", remote.what, remote.url or "(no URL recorded)", files=remote.files,
              where=f"{located.folder} ({located.origin})"))
    return located


def _locate(remote: Remote) -> Located:
    root = data_root()
    if root is not None and (root / remote.data_dir).is_dir():
        folder = root / remote.data_dir
        missing = [n for n in remote.files if not _present(folder, n)]
        if missing:
            raise DataUnavailable(f"{remote.what}: the local copy {folder} lacks {', '.join(map(repr, missing))}. "
                            f"Complete it: {_manual_instructions(remote, missing)}.")
        logger.info("%s: reading the local copy in %s", remote.what, folder)
        return Located(folder, "data dir")
    folder = cache_root() / remote.data_dir
    missing = [n for n in remote.files if not _present(folder, n)]
    if not missing:
        logger.info("%s: reading the cached copy in %s", remote.what, folder)
        return Located(folder, "cache")
    if offline():
        flags = ", ".join(f"{v}={os.environ[v]}" for v in OFFLINE_VARS if os.environ.get(v))
        raise DataUnavailable(f"{remote.what}: no local copy and downloads are off ({flags}, offline mode). To use it "
                        f"offline, {_manual_instructions(remote, missing)} (or point --data-dir / {DATA_DIR_VAR} "
                        f"at a folder holding {remote.data_dir}/ laid out as upstream).")
    _download_missing(remote, folder, missing)
    return Located(folder, "downloaded")


def _download_missing(remote: Remote, folder: Path, missing: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    archive = _archive_parts(remote.url or "")
    if archive:
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{remote.data_dir}-") as tmp:
            tarball = Path(tmp) / "archive.tar.gz"
            download(archive[0], tarball, remote, missing)
            _extract(tarball, archive[1], missing, folder, remote)
        return
    for name in missing:
        if name.endswith("/"):
            raise UserError(f"{remote.what}: {name!r} is a folder, which only an archive URL (.tar.gz#folder) can "
                            f"provide; {_manual_instructions(remote, [name])}.")
        download(file_url(remote, name), folder / name, remote, [name])


def _extract(tarball: Path, inner: str, names: list[str], folder: Path, remote: Remote) -> None:
    """Copy the wanted files / folders out of a GitHub-style tarball (one top folder), then move them in."""
    prefix = f"{inner}/" if inner else ""
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{remote.data_dir}-x-"))
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                parts = member.name.split("/", 1)
                if not member.isfile() or len(parts) < 2 or not parts[1].startswith(prefix):
                    continue
                relative = parts[1][len(prefix):]
                if ".." in relative.split("/") or not any(relative == n or (n.endswith("/") and
                                                                            relative.startswith(n)) for n in names):
                    continue
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as source, open(target, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(source, out)
        absent = [n for n in names if not _present(staging, n)]
        if absent:
            raise UserError(f"{remote.what}: the archive {remote.url} holds no {', '.join(map(repr, absent))}; "
                            f"the recorded URL is wrong or upstream moved the files.")
        for name in names:
            destination = folder / name.rstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name.rstrip("/"), destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _timeout() -> float:
    value = os.environ.get(TIMEOUT_VAR, "").strip()
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise UserError(f"{TIMEOUT_VAR}={value!r} is not a number of seconds.") from None


def _request(url: str) -> urllib.request.Request:
    from imgbench import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"imgbench/{__version__}"})
    token = os.environ.get("HF_TOKEN", "").strip()
    if token and urllib.parse.urlparse(url).hostname in ("huggingface.co", "hf.co"):
        # unredirected: the token goes to the hub only, never to the CDN it redirects to
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    return request


def download(url: str, target: Path, remote: Remote, names: list[str]) -> None:
    """Stream `url` to `target` atomically (temp file, then rename); any failure is a UserError with a fix."""
    if offline():
        raise DataUnavailable(f"{remote.what}: downloads are off (offline mode); "
                              f"{_manual_instructions(remote, names)}.")
    logger.warning("%s: downloading %s", remote.what, url)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        # build_opener installs a ProxyHandler reading HTTP(S)_PROXY / NO_PROXY from the environment.
        opener = urllib.request.build_opener()
        with os.fdopen(handle, "wb") as out, opener.open(_request(url), timeout=_timeout()) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp_name, target)
    except urllib.error.HTTPError as exc:
        raise DataUnavailable(f"{remote.what}: download failed (HTTP {exc.code} {exc.reason} from {url}); the source "
                        f"refused it (moved, gated or down). To get it by hand, "
                        f"{_manual_instructions(remote, names)}.") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataUnavailable(f"{remote.what}: download failed ({type(exc).__name__}: {reason}). Check the network "
                        f"and proxy settings, or {_manual_instructions(remote, names)}.") from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
