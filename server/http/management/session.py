"""Login sessions for the dashboard: a cookie as an alternative to HTTP basic auth.

``POST /session`` with ``{"username", "password"}`` checks the credentials the
way the API checks basic auth and sets an HttpOnly, SameSite=Strict cookie
holding a random token; ``GET /session`` says who is logged in; ``DELETE
/session`` logs out. The token maps to a user *name* only: the API looks the
user up on every request (:meth:`Api.authenticate`), so a deleted user or a
changed tag takes effect at once and the same per-user authorization applies
as with basic auth. Sessions live in memory (a restart logs everyone out) and
expire after ``ttl`` seconds without use.

A cookie is sent by the browser on its own, so a request that changes
something (not GET/HEAD) and carries an ``Origin`` header must come from the
dashboard's own origin (cross-site request forgery).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import TYPE_CHECKING

from aiohttp import web
from warren.server.core.errlog import clip
from warren.server.http.management.listing import dumps

if TYPE_CHECKING:
    from warren.server.http.management.api import Api

log = logging.getLogger("warren.management")

COOKIE = "warren_session"
MAX_SESSIONS = 10000


class SessionError(Exception):
    """The request's session cookie cannot be used (reason for the 401)."""


class Sessions:
    """In-memory session tokens: token -> (user name, last use)."""

    def __init__(self, ttl: float = 8 * 3600) -> None:
        self.ttl = ttl
        self._s: dict[str, tuple[str, float]] = {}

    def create(self, user: str) -> str:
        now = time.monotonic()
        if len(self._s) >= MAX_SESSIONS:
            self._expire(now)
            if len(self._s) >= MAX_SESSIONS:  # still full: the oldest goes
                del self._s[min(self._s, key=lambda t: self._s[t][1])]
        token = secrets.token_urlsafe(32)
        self._s[token] = (user, now)
        return token

    def _expire(self, now: float) -> None:
        for t in [t for t, (_, used) in self._s.items() if now - used > self.ttl]:
            del self._s[t]

    def user(self, token: str) -> str | None:
        s = self._s.get(token)
        if s is None:
            return None
        now = time.monotonic()
        if now - s[1] > self.ttl:
            del self._s[token]
            return None
        self._s[token] = (s[0], now)
        return s[0]

    def drop(self, token: str) -> None:
        self._s.pop(token, None)

    def user_of(self, request: web.Request) -> str:
        """The user name of the request's session cookie (raises :class:`SessionError`)."""
        token = request.cookies.get(COOKIE, "")
        name = self.user(token) if token else None
        if name is None:
            raise SessionError("Login failed")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                raise SessionError("cross-origin request refused")
        return name


def install(app: web.Application, api: Api) -> None:
    """Add the ``/session`` routes for ``api`` to the management ``app``."""
    sessions: Sessions = api.sessions

    def reply(data: dict, status: int = 200) -> web.Response:
        return web.Response(text=dumps(data), status=status, content_type="application/json")

    async def login(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str):
            return reply({"error": "bad_request", "reason": "username and password (strings) are required"}, 400)
        err = api.check_login(body["username"], body["password"], request.remote)
        if err is not None:
            log.warning("dashboard login refused user=%s peer=%s reason=%s", clip(body["username"]),
                        request.remote, err)
            return reply({"error": "not_authorized", "reason": err}, 401)
        token = sessions.create(body["username"])
        user = api.broker.users[body["username"]]
        r = reply({"name": user.name, "tags": list(user.tags)})
        r.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                     secure=request.scheme == "https")
        return r

    async def whoami(request: web.Request) -> web.Response:
        try:
            user = api.session_user(request)
        except Exception as exc:  # HTTPError from the API: not logged in
            return reply({"error": "not_authorized", "reason": str(exc)}, 401)
        return reply({"name": user.name, "tags": list(user.tags)})

    async def logout(request: web.Request) -> web.Response:
        sessions.drop(request.cookies.get(COOKIE, ""))
        r = web.Response(status=204)
        r.del_cookie(COOKIE, path="/")
        return r

    app.router.add_post("/session", login)
    app.router.add_get("/session", whoami)
    app.router.add_delete("/session", logout)
