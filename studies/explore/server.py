"""The web app: :func:`create_app` (FastAPI) over an :class:`~.context.Explorer`.

Routes (the contract in ``EXPLORE_CONTRACT.md``): ``GET /`` (the page), ``/static/<file>`` (files of
``studies/explore/static`` only), ``/files/<64 hex>.<png|json|yaml|safetensors>`` (the store only),
``/api/meta``, ``/api/layer/{layer}``, ``/api/unit/{uid}``, ``/api/family/{layer}/{name}``, ``/api/graph``,
``/api/search?q=``, ``POST /api/plan/validate``, ``POST /api/edit``, ``POST /api/build``,
``/api/jobs/{id}`` (``HEAD`` too for ``/files/``).

Status rule: a name in the URL path that does not exist (layer, unit, family, job, file) is 404; anything wrong
in a request body or query (the POST routes) is 400, as is a unit path segment that is not ``layer:index``.

Safety: a file is served only when its name matches a strict pattern and, resolved, lies in the static
folder or the store's ``files`` folder (no ``..``, no absolute paths, no symlinks out, no other suffixes);
requests must name this server in ``Host`` (loopback names, or ``--host``) and, with an ``Origin``, come from
it; ``POST`` bodies must be ``application/json`` (:func:`check_origin`: DNS rebinding and CSRF); request
bodies over ``config.max_body`` bytes get 413 before they are parsed (the ``Content-Length``
header, or counted while streaming); JSON bodies are read with :func:`circuits.documents.load_json`
(nesting and number bounds); plans are validated before any compute; any error is a JSON
``{"error": message}`` and the server keeps serving.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from circuits.model import InceptionV1

from . import builds, edit_jobs, family, pages
from .config import ExploreConfig
from .context import Explorer, UserError
from .jobs import JOB_ID_LEN, QueueFull, message

log = logging.getLogger("circuits.explore")

STATIC = Path(__file__).resolve().parent / "static"
#: A static file name: path segments of letters, digits, '_', '-', one suffix from MEDIA.
STATIC_RE = re.compile(r"^(?:[A-Za-z0-9_-]+/){0,2}[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.([a-z0-9]{1,6})$")
MEDIA = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
         "png": "image/png", "svg": "image/svg+xml", "json": "application/json", "ico": "image/x-icon",
         "woff2": "font/woff2", "txt": "text/plain; charset=utf-8"}
BLOB_MEDIA = {"png": "image/png", "json": "application/json", "yaml": "application/yaml; charset=utf-8",
              "safetensors": "application/octet-stream"}
JOB_RE = re.compile(rf"^[0-9a-f]{{{JOB_ID_LEN}}}$")


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, before the app reads it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = self.limit + 1
                if n > self.limit:
                    return await _send_json(send, 413, f"request body of {n} bytes is over the limit of "
                                                       f"{self.limit} bytes")
        seen = 0
        started = False

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return msg

        async def tracked(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, f"request body is over the limit of {self.limit} bytes")


#: Host names of this machine (a browser on it sends one of these as ``Host``).
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str) -> tuple[str, ...]:
    """The ``Host`` names (no port) the server answers: the loopback names, and ``host`` when it binds another
    interface (``--host``). A DNS-rebinding page's requests carry its own domain name and are refused."""
    import socket

    own = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if own in ("0.0.0.0", "[::]"):  # every interface: the machine's name too
        return LOOPBACK + (socket.gethostname().lower(),)
    return LOOPBACK + (() if own in LOOPBACK or own == "::1" else (own.lower(),))


def check_origin(headers: dict[bytes, bytes], method: str, hosts: tuple[str, ...], port: int) -> tuple[int, str] | None:
    """``(status, message)`` for a request another site may have sent, else ``None``.

    - 403 when ``Host`` is not ``<one of hosts>:<port>`` (``port`` 0: the port is not checked; a missing port
      is accepted for port 80) — DNS rebinding;
    - 403 when an ``Origin`` header is present and is not ``http://<Host>`` — cross-site requests;
    - 415 for a ``POST`` whose ``Content-Type`` is not ``application/json`` (a page of another site can send
      a form or ``text/plain`` POST without asking, never a JSON one) — CSRF."""
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    name, sep, p = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not sep:
        name, p = host, ""
    ok_port = port == 0 or p == str(port) or (not p and port == 80)
    if name not in hosts or not ok_port or (p and not p.isdigit()):
        return 403, (f"refused: Host {host[:80]!r} is not this server (expected one of "
                     f"{', '.join(h + ':' + str(port) if port else h for h in hosts)})")
    origin = headers.get(b"origin")
    if origin is not None and origin.decode("latin-1").strip().lower() != f"http://{host}":
        return 403, f"refused: a request from another origin ({origin.decode('latin-1')[:80]!r})"
    if method == "POST":
        ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if ctype != "application/json":
            return 415, f"POST bodies must be sent as Content-Type: application/json; got {ctype[:60]!r}"
    return None


class SameOrigin:
    """ASGI middleware: :func:`check_origin` on every request (``config.port`` read per request, so a server
    that binds port 0 sets it once it knows the port)."""

    def __init__(self, app, config: ExploreConfig):
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        bad = check_origin(headers, scope["method"], allowed_hosts(self.config.host), self.config.port)
        if bad is not None:
            return await _send_json(send, *bad)
        return await self.app(scope, receive, send)


async def _send_json(send, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def static_file(name: str, root: Path = STATIC) -> Path | None:
    """The static file behind ``/static/<name>``, or ``None`` (bad name, not a regular file in ``root``)."""
    m = STATIC_RE.match(name or "")
    if not m or m.group(1) not in MEDIA or ".." in name:
        return None
    p = root / name
    if p.is_symlink() or not p.is_file():
        return None
    real, base = p.resolve(), root.resolve()
    return real if real.is_relative_to(base) else None


async def _json_body(request: Request) -> dict:
    from circuits.documents import DocumentError, load_json

    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("the request body is not UTF-8 text") from None
    try:
        body = load_json(text, "request body")
    except DocumentError as e:
        raise UserError(str(e)) from None
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    return body


def create_app(config: ExploreConfig, model: InceptionV1 | None = None) -> FastAPI:
    """The explorer's FastAPI app (``model`` replaces loading ``config.checkpoint``; tests).

    Raises:
        ValueError / KeyError / FileNotFoundError: a bad setting, before the model is loaded."""
    ex = Explorer(config, model)
    app = FastAPI(title="circuits explore", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = ex
    app.add_middleware(BodyLimit, limit=config.max_body)
    app.add_middleware(SameOrigin, config=config)  # added last: runs first
    _handlers(app)
    _page_routes(app, ex)
    _api_routes(app, ex)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, e: UserError):
        return _error(e.status, str(e))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, e: QueueFull):
        return _error(429, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, str(e.detail) if e.status_code != 404 else f"not found: {request.url.path[:200]}")

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError):
        errs = e.errors()
        where = ".".join(str(x) for x in errs[0].get("loc", ())) if errs else ""
        return _error(400, f"bad request{': ' + where if where else ''}: {errs[0].get('msg') if errs else e}")

    @app.exception_handler(Exception)
    async def failure(request: Request, e: Exception):
        log.exception("request %s failed", request.url.path)
        return _error(500, f"{type(e).__name__}: {message(e)}"[:2000])


def _page_routes(app: FastAPI, ex: Explorer) -> None:
    @app.get("/")
    def index():
        p = static_file("index.html")
        if p is None:
            return _error(404, "the page is missing (studies/explore/static/index.html)")
        return FileResponse(p, media_type=MEDIA["html"])

    @app.get("/static/{name:path}")
    def static(name: str):
        p = static_file(name)
        if p is None:
            return _error(404, f"no static file {name[:100]!r}")
        return FileResponse(p, media_type=MEDIA[p.suffix[1:]])

    @app.api_route("/files/{name:path}", methods=["GET", "HEAD"])
    def files(name: str):
        p = ex.store.resolve_served(name)
        if p is None:
            return _error(404, f"no file {name[:100]!r}")
        return FileResponse(p, media_type=BLOB_MEDIA[p.suffix[1:]],
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)


def _api_routes(app: FastAPI, ex: Explorer) -> None:
    @app.get("/api/meta")
    def meta():
        return ex.memo("meta", lambda: pages.meta(ex))

    @app.get("/api/layer/{layer}")
    def layer(layer: str):
        return pages.layer_page(ex, layer)

    @app.get("/api/unit/{uid}")
    def unit(uid: str):
        return pages.unit_page(ex, uid)

    @app.get("/api/family/{layer}/{name}")
    def family_(layer: str, name: str):
        return family.family_page(ex, layer, name)

    @app.get("/api/graph")
    def graph():
        return family.graph(ex)

    @app.get("/api/search")
    def search(q: str = ""):
        return pages.search(ex, q)

    @app.post("/api/plan/validate")
    async def validate(request: Request):
        body = await _json_body(request)
        return await run_in_threadpool(edit_jobs.validate, ex, body)

    @app.post("/api/edit")
    async def edit(request: Request):
        body = await _json_body(request)
        job = await run_in_threadpool(edit_jobs.submit, ex, body)
        return {"job": job.id}

    @app.post("/api/build")
    async def build(request: Request):
        body = await _json_body(request)
        layer = ex.layer(body.get("layer", ""), 400)
        units = body.get("units")
        if units is None:
            us = [ex.unit(f"{layer}:{i}") for i in range(ex.spec.layer_width(layer))]
        else:
            if not isinstance(units, list) or not units or len(units) > 1024:
                raise UserError("units must be a non-empty list of unit ids such as ['3b:379'] (at most 1024)")
            us = [ex.unit(str(u), 400) for u in units]
            if any(u.layer != layer for u in us):
                raise UserError(f"units must be of layer {layer}")
        job = builds.submit_build(ex, us, body.get("what", ["featurevis", "dataset"]))
        return {"job": job.id}

    @app.get("/api/jobs/{job_id}")
    def jobs(job_id: str):
        job = ex.jobs.get(job_id) if JOB_RE.match(job_id) else None
        if job is None:
            return _error(404, f"no job {job_id[:40]!r}")
        return job.to_dict()
