"""A fake Hugging Face Hub on 127.0.0.1 that answers what huggingface_hub's real client
asks when it pushes and downloads a model (HF_ENDPOINT points at it; xet is off with
HF_HUB_DISABLE_XET=1, and the fake advertises no xet either).

Pushing: ``GET /api/whoami-v2``, ``POST /api/repos/create``, ``POST /api/validate-yaml``,
``POST /api/models/{repo}/branch/{branch}``, ``GET /api/models/{repo}/tree/{rev}``,
``POST /api/models/{repo}/preupload/{rev}`` (regular or LFS, with the file's current oid,
so that unchanged files are skipped), the git-LFS batch API
``POST /{repo}.git/info/lfs/objects/batch`` and its upload ``PUT``, and
``POST /api/models/{repo}/commit/{rev}`` (NDJSON: a header, base64 files, LFS pointers,
deletions), applied all at once or not at all, as the Hub does.

Downloading: ``GET /api/models/{repo}[/revision/{rev}]`` (the model info and its files),
and ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with the headers the client reads
(X-Repo-Commit, ETag, X-Linked-Etag / X-Linked-Size for LFS files, X-Error-Code).

Tokens: each belongs to a user, who may write to their own namespace and their orgs'
(a "read" token to none). Private repositories are hidden from anyone else. Every
request is kept (method, path, headers, body) so that tests can look through them, and
``fail(path_part, action)`` makes the next matching request fail: an HTTP status, or
"drop" (the connection closes without an answer).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

REGULAR_LIMIT = 10 * 2**20  # bigger files go through LFS, as on the Hub
LFS_SUFFIXES = (".safetensors", ".bin", ".png", ".jpg", ".pt", ".model")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class User:
    name: str
    orgs: tuple[str, ...] = ()
    role: str = "write"


@dataclass
class Blob:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    @property
    def oid(self) -> str:
        """What preupload reports, as the client computes it locally."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    oid: str
    summary: str
    description: str
    files: dict[str, Blob]
    parent: str | None


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    branches: dict[str, list[Commit]] = field(default_factory=dict)

    def head(self, revision: str = "main") -> Commit | None:
        commits = self.branches.get(revision)
        if commits:
            return commits[-1]
        for history in self.branches.values():  # a commit id
            for commit in history:
                if commit.oid == revision:
                    return commit
        return None


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeHub:
    def __init__(self, tokens: dict[str, User]) -> None:
        self.tokens = tokens
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self._faults: list[tuple[str, str, object]] = []
        self._lock = threading.Lock()
        self._count = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                hub._serve(self, "GET")

            def do_HEAD(self):
                hub._serve(self, "HEAD")

            def do_POST(self):
                hub._serve(self, "POST")

            def do_PUT(self):
                hub._serve(self, "PUT")

            def do_DELETE(self):
                hub._serve(self, "DELETE")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- for tests ----------------------------------------------------------------

    def fail(self, method: str, path_part: str, action: object) -> None:
        """The next ``method`` request whose path holds ``path_part``: ``action`` (an
        HTTP status, or "drop")."""
        with self._lock:
            self._faults.append((method, path_part, action))

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, private: bool = False) -> Repo:
        """A repository made elsewhere (another user's, an earlier upload)."""
        repo = self._create(repo_id, private)
        blobs = {p: Blob(c, self._is_lfs(p, c)) for p, c in files.items()}
        for blob in blobs.values():
            if blob.lfs:
                self.lfs[blob.sha256] = blob.content
        self._commit(repo, "main", "Upload by someone", "", blobs)
        return repo

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].head(revision)
        return {p: b.content for p, b in commit.files.items()} if commit else {}

    def history(self, repo_id: str, revision: str = "main") -> list[Commit]:
        return list(self.repos[repo_id].branches.get(revision, []))

    def seen(self, method: str = "", path_part: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method.startswith(method) and path_part in r.path]

    # -- the Hub --------------------------------------------------------------------

    def _create(self, repo_id: str, private: bool) -> Repo:
        repo = self.repos[repo_id] = Repo(repo_id, private)
        self._commit(
            repo, "main", "initial commit", "", {".gitattributes": Blob(GITATTRIBUTES, False)}
        )
        return repo

    def _commit(self, repo, branch, summary, description, files) -> Commit:
        with self._lock:
            self._count += 1
            count = self._count
        history = repo.branches.setdefault(branch, [])
        parent = history[-1] if history else None
        merged = dict(parent.files) if parent else {}
        merged.update(files)
        oid = hashlib.sha1(f"{repo.repo_id}{branch}{count}{summary}".encode()).hexdigest()
        commit = Commit(oid, summary, description, merged, parent.oid if parent else None)
        history.append(commit)
        return commit

    @staticmethod
    def _is_lfs(path: str, content: bytes) -> bool:
        return path.endswith(LFS_SUFFIXES) or len(content) > REGULAR_LIMIT or b"\0" in content[:512]

    def _user(self, headers: dict[str, str]) -> User | None:
        auth = headers.get("authorization", "")
        return self.tokens.get(auth[len("Bearer ") :]) if auth.startswith("Bearer ") else None

    @staticmethod
    def _can_write(user: User | None, repo_id: str) -> bool:
        owner = repo_id.split("/")[0]
        return user is not None and user.role != "read" and owner in (user.name, *user.orgs)

    def _visible(self, user: User | None, repo_id: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        if repo.private and (user is None or repo_id.split("/")[0] not in (user.name, *user.orgs)):
            return None
        return repo

    def _read_body(self, handler) -> bytes:
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def _serve(self, handler, method: str) -> None:
        url = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body = self._read_body(handler) if method in ("POST", "PUT", "DELETE") else b""
        with self._lock:
            self.requests.append(Request(method, url.path, headers, body))
            fault = next((f for f in self._faults if f[0] == method and f[1] in url.path), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault[2] == "drop":
            handler.close_connection = True
            return
        if fault is not None and fault[2] == "hang":
            time.sleep(60)
            return
        if fault is not None:
            status, extra, payload = fault[2], {}, json.dumps({"error": "fault"}).encode()
        else:
            try:
                status, extra, payload = self._answer(method, url.path, url.query, headers, body)
            except Exception as exc:  # a bug of the fake: say so loudly
                status, extra, payload = 599, {}, f"fake hub error: {exc!r}".encode()
        handler.send_response(status)
        extra.setdefault("Content-Type", "application/json")
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(payload)

    def _answer(self, method, path, query, headers, body):
        """``path`` as sent: a revision is one percent-encoded segment (refs%2Fpr%2F1)."""
        user = self._user(headers)

        def js(status, data, **extra):
            return status, dict(extra), json.dumps(data).encode()

        def error(status, code, message):
            return js(
                status, {"error": message}, **{"X-Error-Code": code, "X-Error-Message": message}
            )

        if path == "/api/whoami-v2":
            if user is None:
                return js(401, {"error": "Invalid credentials in Authorization header"})
            return js(
                200,
                {
                    "type": "user",
                    "name": user.name,
                    "orgs": [{"name": o, "roleInOrg": "write"} for o in user.orgs],
                    "auth": {"type": "access_token", "accessToken": {"role": user.role}},
                },
            )
        if path == "/api/validate-yaml" and method == "POST":
            return js(200, {"errors": [], "warnings": []})
        if path == "/api/repos/create" and method == "POST":
            data = json.loads(body)
            repo_id = f"{data.get('organization') or (user.name if user else '')}/{data['name']}"
            if user is None:
                return js(401, {"error": "Invalid username or password."})
            if not self._can_write(user, repo_id):
                return js(
                    403,
                    {
                        "error": "You don't have the rights to create a model under the "
                        f"namespace {repo_id.split('/')[0]!r}"
                    },
                )
            if repo_id in self.repos:
                return js(
                    409,
                    {
                        "error": "You already created this model repo",
                        "url": f"{self.url}/{repo_id}",
                    },
                )
            self._create(repo_id, data.get("visibility") == "private" or bool(data.get("private")))
            return js(200, {"url": f"{self.url}/{repo_id}", "name": repo_id})

        if path == "/api/repos/delete" and method == "DELETE":
            data = json.loads(body)
            repo_id = f"{data.get('organization') or (user.name if user else '')}/{data['name']}"
            if not self._can_write(user, repo_id):
                return js(403, {"error": "You don't have the rights to delete this repo"})
            if self.repos.pop(repo_id, None) is None:
                return error(404, "RepoNotFound", "Repository not found")
            return js(200, {})
        match = re.fullmatch(
            r"/api/models/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit|branch)/([^/]+)(/.+)?)?",
            path,
        )
        if match:
            repo_id, action, rest, below = match.groups()
            rest = unquote(rest) if rest else rest
            below = unquote(below).strip("/") if below else ""
            repo = self._visible(user, repo_id)
            if repo is None:
                return error(404, "RepoNotFound", "Repository not found")
            if action in (None, "revision"):
                commit = repo.head(rest or "main")
                if commit is None:
                    return error(404, "RevisionNotFound", "Invalid rev id")
                return js(
                    200,
                    {
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": commit.oid,
                        "private": repo.private,
                        "siblings": [{"rfilename": p} for p in sorted(commit.files)],
                        "lastModified": "2025-01-01T00:00:00.000Z",
                        "tags": [],
                        "downloads": 0,
                        "likes": 0,
                    },
                )
            if action == "tree":
                commit = repo.head(rest)
                if commit is None:
                    return error(404, "RevisionNotFound", "Invalid rev id")
                prefix = f"{below}/" if below else ""
                inside = {p: b for p, b in commit.files.items() if p.startswith(prefix)}
                if below and not inside:
                    return error(404, "EntryNotFound", f"{below} does not exist on {rest}")
                entries = []
                for p, blob in sorted(inside.items()):
                    entry = {
                        "type": "file",
                        "path": p,
                        "size": len(blob.content),
                        "oid": blob.git_oid,
                    }
                    if blob.lfs:
                        entry["lfs"] = {
                            "oid": blob.sha256,
                            "size": len(blob.content),
                            "pointerSize": 134,
                        }
                    entries.append(entry)
                return js(200, entries)
            if not self._can_write(user, repo_id):
                return js(403, {"error": "You don't have the rights to write to this repo"})
            if action == "branch" and method == "DELETE":
                if repo.branches.pop(rest, None) is None:
                    return error(404, "RevisionNotFound", "Invalid rev id")
                return js(200, {})
            if action == "branch":
                if rest in repo.branches:
                    return js(409, {"error": "Branch already exists"})
                repo.branches[rest] = [repo.head("main")]
                return js(200, {})
            if action == "preupload":
                commit = repo.head(rest)
                files = []
                for f in json.loads(body)["files"]:
                    sample = base64.b64decode(f["sample"])
                    lfs = (
                        f["path"].endswith(LFS_SUFFIXES)
                        or f["size"] > REGULAR_LIMIT
                        or b"\0" in sample
                    )
                    old = commit.files.get(f["path"]) if commit else None
                    files.append(
                        {
                            "path": f["path"],
                            "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False,
                            "oid": old.oid if old else None,
                        }
                    )
                return js(200, {"files": files, "commitOid": commit.oid if commit else None})
            if action == "commit":
                return self._apply_commit(repo, rest, body, js)
        match = re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if match and method == "POST":
            if not self._can_write(user, match[1]) or self._visible(user, match[1]) is None:
                return js(403, {"message": "Forbidden"})
            objects = []
            for obj in json.loads(body)["objects"]:
                item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in self.lfs:
                    item["actions"] = {
                        "upload": {"href": f"{self.url}/_lfs/{obj['oid']}", "header": {}}
                    }
                objects.append(item)
            return js(
                200,
                {"transfer": "basic", "objects": objects},
                **{"Content-Type": "application/vnd.git-lfs+json"},
            )
        match = re.fullmatch(r"/_lfs/([0-9a-f]{64})", path)
        if match and method == "PUT":
            if hashlib.sha256(body).hexdigest() != match[1]:
                return js(400, {"error": "sha256 mismatch"})
            self.lfs[match[1]] = body
            return 200, {}, b""
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match and method in ("GET", "HEAD"):
            repo_id, revision, name = match[1], unquote(match[2]), unquote(match[3])
            repo = self._visible(user, repo_id)
            if repo is None:
                return error(404, "RepoNotFound", "Repository not found")
            commit = repo.head(revision)
            if commit is None:
                return error(404, "RevisionNotFound", "Invalid rev id")
            blob = commit.files.get(name)
            if blob is None:
                status, extra, payload = error(404, "EntryNotFound", "Entry not found")
                extra["X-Repo-Commit"] = commit.oid
                return status, extra, payload
            extra = {
                "X-Repo-Commit": commit.oid,
                "ETag": f'"{blob.git_oid}"',
                "Content-Type": "application/octet-stream",
            }
            if blob.lfs:
                extra.update(
                    {"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(blob.content))}
                )
            return 200, extra, blob.content
        return js(404, {"error": f"the fake hub does not know {method} {path}"})

    def _apply_commit(self, repo: Repo, revision: str, body: bytes, js):
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"] if lines and lines[0]["key"] == "header" else None
        if header is None:
            return js(400, {"error": "no header"})
        if repo.head(revision) is None:
            return js(404, {"error": "Invalid rev id"})
        added: dict[str, Blob] = {}
        deleted: list[str] = []
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                added[value["path"]] = Blob(base64.b64decode(value["content"]), False)
            elif line["key"] == "lfsFile":
                content = self.lfs.get(value["oid"])
                if content is None or len(content) != value.get("size", len(content)):
                    return js(422, {"error": f"LFS object {value['oid']} was never uploaded"})
                added[value["path"]] = Blob(content, True)
            elif line["key"] == "deletedFile":
                if value["path"] not in repo.head(revision).files:
                    return js(404, {"error": "A file with this name doesn't exist"})
                deleted.append(value["path"])
            else:
                return js(400, {"error": f"unknown key {line['key']}"})
        commit = self._commit(
            repo, revision, header["summary"], header.get("description", ""), added
        )
        for path in deleted:
            commit.files.pop(path, None)
        return js(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.oid}",
            },
        )
