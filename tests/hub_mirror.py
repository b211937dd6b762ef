"""A local stand-in for the Hugging Face hub: a folder of repos served over HTTP on 127.0.0.1.

Not a conftest: imported by tests/test_download.py. It answers the few endpoints huggingface_hub and
diffusers call to fetch a repo (model info with its file list, the recursive tree with blob and LFS hashes,
HEAD and GET of `resolve/`), so with HF_ENDPOINT pointing here the real download code paths run offline.
Each repo's commit is the sha1 of its id; weight files are served as LFS files (ETag = sha256), the others as
git blobs (ETag = git's sha1), as the hub does. `gets` lists every file whose content was sent.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def commit_of(repo: str) -> str:
    return hashlib.sha1(repo.encode()).hexdigest()  # noqa: S324 - a stable fake commit id


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()  # noqa: S324 - git's object id


class Mirror:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.gets: list[str] = []

    def files(self, repo: str) -> list[str]:
        folder = self.root / repo
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def etag(self, path: Path) -> str:
        data = path.read_bytes()
        return hashlib.sha256(data).hexdigest() if path.suffix in LFS_SUFFIXES else _git_sha1(data)


class _Handler(http.server.BaseHTTPRequestHandler):
    mirror: Mirror

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, obj: object) -> None:
        self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _missing(self, code: str, head: bool = False) -> None:
        self._send(404, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "Content-Type":
                                                               "application/json"}, head)

    def _route(self, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).strip("/").split("/")
        mirror = self.mirror
        if path[:2] == ["api", "models"] and len(path) >= 4:
            repo = "/".join(path[2:4])
            if not (mirror.root / repo).is_dir():
                return self._missing("RepoNotFound")
            rest = path[4:]
            if not rest or rest[0] == "revision":
                return self._json({"id": repo, "modelId": repo, "sha": commit_of(repo), "private": False,
                                   "siblings": [{"rfilename": f} for f in mirror.files(repo)]})
            if rest[0] == "tree":
                prefix = "/".join(rest[2:])
                entries = []
                for name in mirror.files(repo):
                    if prefix and not name.startswith(prefix + "/"):
                        continue
                    file = mirror.root / repo / name
                    data = file.read_bytes()
                    entry = {"type": "file", "path": name, "size": len(data), "oid": _git_sha1(data)}
                    if file.suffix in LFS_SUFFIXES:
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                        "pointerSize": 130}
                    entries.append(entry)
                return self._json(entries)
        if len(path) >= 5 and path[2] == "resolve":
            repo, name = "/".join(path[:2]), "/".join(path[4:])
            file = mirror.root / repo / name
            if not file.is_file():
                return self._missing("EntryNotFound" if (mirror.root / repo).is_dir() else "RepoNotFound", head)
            if not head:
                mirror.gets.append(f"{repo}/{name}")
            return self._send(200, file.read_bytes(), {"X-Repo-Commit": commit_of(repo),
                                                       "ETag": f'"{mirror.etag(file)}"'}, head)
        return self._missing("NotFound", head)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[tuple[str, Mirror]]:
    """Serve the repos under `root` (root/<org>/<name>/...); yields (endpoint URL, mirror)."""
    mirror = Mirror(root)
    handler = type("Handler", (_Handler,), {"mirror": mirror})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", mirror
    finally:
        server.shutdown()
        server.server_close()
