"""The aiohttp.web application: routes, the auth/rate-limit/fault middleware, handlers.

Every request passes one middleware that counts it, applies a fault if one is due, checks
auth, the ban and the rate limit, then calls the handler. Rejections by that gate (1101,
1102, 1200, 1005) use the ``{code, msg}`` envelope on every endpoint, detectors included,
as an API gateway in front of them would; ``EmulatorConfig.detector_auth_errors="native"``
makes the detectors refuse credentials in their own envelopes instead (UNCONFIRMED).

The handlers are bound to one ``ServerState`` (``build_app(state)``) and read and change
only that: never the ``Emulator``, which owns the state and serves this app.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._faces import detect_faces, detect_legacy
from ._frames import analyze_frames, error_body
from ._media import md5_of, mp4_chunks, mp4_size, png_bytes
from ._server_state import ServerState
from ._validate import Rejected

__all__ = ["build_app"]

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_RESULT = re.compile(r"^final_[0-9]{17}-[0-9]{4}_([0-9a-f]{24})\.(png|mp4)$")
_GENERATED = re.compile(r"^(faces|uploads)/[\w.-]+\.png$")
_PATIENT = (
    "Please be patient! If your results are not generated in three hours, "
    "please check your input {}."
)
_HTML = (
    "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_NO_AUTH = frozenset({"get_token", "result_file"})
_DETECTORS = frozenset({"detect_faces", "analyze_frames", "detect_legacy"})
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _endpoint(request: web.Request) -> str:
    return request.match_info.route.name or "unknown"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class _Api:
    """Handlers bound to one server state."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._md5 = state.md5_cache
        self._cut: set[int] = set()  # ids of requests under a drop_after fault

    # --- envelopes ---------------------------------------------------------------------------

    def ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        self.state.stats.codes[(_endpoint(request), body.get("code", 1000))] += 1
        return web.json_response(body)

    def error(self, request: web.Request, code: int, msg: str, *, key: str = "msg") -> web.Response:
        config = self.state.config
        body: dict[str, Any] = {"code": code, key: msg}
        if config.error_data == "null":
            body["data"] = None
        elif config.error_data == "empty":
            body["data"] = {}
        self.state.stats.codes[(_endpoint(request), code)] += 1
        return web.json_response(body, status=config.error_status.get(code, 200))

    def detector(self, request: web.Request, status: int, body: dict[str, Any]) -> web.Response:
        # Analyze Frames has no code: counted as the new detector's 0 (success) and 1 (failure).
        code = body["error_code"] if "error_code" in body else int(body.get("success") is not True)
        self.state.stats.codes[(_endpoint(request), code)] += 1
        return web.json_response(body, status=status)

    def refuse(self, request: web.Request, code: int, msg: str) -> web.Response:
        """An auth failure (1101, 1102, 1200) in the endpoint's envelope (see the config)."""
        endpoint = _endpoint(request)
        if endpoint not in _DETECTORS or self.state.config.detector_auth_errors == "standard":
            return self.error(request, code, msg)
        body: dict[str, Any]
        if endpoint == "analyze_frames":
            body = error_body(msg)
        elif endpoint == "detect_faces":
            body = {"error_code": 1, "error_msg": msg, "faces_obj": {}}
        else:
            body = {"error_code": 1, "error_msg": msg}
        return self.detector(request, 403 if code == 1200 else 401, body)

    @staticmethod
    async def json_body(request: web.Request) -> Any:
        try:
            raw = await request.read()
        except ConnectionResetError:
            # The client went away mid-body (killed, timed out): nothing was created, and the
            # answer goes nowhere. Not an emulator error, so not "Error handling request".
            raise web.HTTPBadRequest(
                text="the client disconnected before its body arrived"
            ) from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    # --- the gate ----------------------------------------------------------------------------

    def auth_code(self, request: web.Request) -> int | None:
        """1101/1102 for bad/missing credentials, None when authorised."""
        state, config = self.state, self.state.config
        authorization = request.headers.get("Authorization", "").strip()
        if authorization:  # Authorization wins over x-api-key (contract 2.3)
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer":
                return 1101
            if not token:
                return 1102
            if state.tokens.valid(token, state.clock.now()):
                return None
            if config.accept_api_key_as_bearer and token == state.api_key:
                return None
            return 1101
        if "x-api-key" in request.headers:
            key = request.headers["x-api-key"].strip()
            if not key:
                return 1102
            return None if key == state.api_key else 1101
        return 1102

    def gate(self, request: web.Request, endpoint: str) -> web.Response | None:
        state, config = self.state, self.state.config
        if endpoint not in _NO_AUTH and (
            endpoint != "detect_legacy" or config.legacy_detect_requires_auth
        ):
            code = self.auth_code(request)
            if code is not None:
                msg = "Authorization empty" if code == 1102 else "Authorization invalid"
                return self.refuse(request, code, msg)
            if config.banned:
                return self.refuse(request, 1200, "Account banned")
        if endpoint != "result_file":
            wait = state.limiter.check(endpoint, state.clock.now(), config)
            if wait > 0:
                response = self.error(request, 1005, "Operation too frequent")
                if config.rate_limit_retry_after:
                    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return response
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        endpoint = _endpoint(request)
        stats = self.state.stats
        stats.requests[endpoint] += 1
        if endpoint == "unknown":
            try:
                return await handler(request)
            except web.HTTPException as exc:
                stats.responses[(endpoint, exc.status)] += 1
                raise
        fault = self.state.faults.pick(endpoint)
        kind = None if fault is None else fault.kind
        if fault is not None:
            stats.faults[(endpoint, fault.kind)] += 1
        if kind == "drop_before":
            return _drop(request)
        if fault is not None and kind == "slow":
            await asyncio.sleep(
                self.state.config.slow_seconds if fault.delay is None else fault.delay
            )
        response: web.StreamResponse
        if kind in ("http_500", "http_502", "http_503", "http_429"):
            status = int(kind[5:]) if kind else 500
            title = f"{status} {_REASONS[status]}"
            headers = {"Retry-After": "1"} if status == 429 else {}
            response = web.Response(
                status=status, text=_HTML.format(title), content_type="text/html", headers=headers
            )
        elif kind == "rate_limited":
            response = self.error(request, 1005, "Operation too frequent")
        else:
            if kind == "drop_after":
                self._cut.add(id(request))
            try:
                response = self.gate(request, endpoint) or await handler(request)
            finally:
                self._cut.discard(id(request))
            if kind == "drop_after":
                return response if response.prepared else _drop(request)
            if kind == "malformed_json" and isinstance(response, web.Response):
                raw = response.body if isinstance(response.body, bytes) else b"{}"
                response = web.Response(
                    status=200, body=raw[: max(1, len(raw) // 2)], content_type="application/json"
                )
        stats.responses[(endpoint, response.status)] += 1
        return response

    # --- handlers ----------------------------------------------------------------------------

    async def get_token(self, request: web.Request) -> web.Response:
        state, key = self.state, self.state.config.token_error_key
        body = await self.json_body(request)
        if not isinstance(body, dict):
            return self.error(request, 1003, "the request body must be a JSON object", key=key)
        client_id, secret = body.get("clientId"), body.get("clientSecret")
        if (
            not client_id
            or not secret
            or not isinstance(client_id, str)
            or not isinstance(secret, str)
        ):
            return self.error(request, 1102, "clientId and clientSecret are required", key=key)
        if client_id != state.client_id or secret != state.client_secret:
            return self.error(request, 1101, "Authorization invalid", key=key)
        if state.config.banned:
            return self.error(request, 1200, "Account banned", key=key)
        return self.ok(request, {"code": 1000, "token": state.issue_token()})

    async def submit(self, request: web.Request) -> web.Response:
        state, endpoint = self.state, _endpoint(request)
        body = await self.json_body(request)
        inputs_ok = True
        if state.config.fetch_inputs:
            inputs_ok = await state.fetch_inputs(endpoint, body)
        try:
            job = state.submit(endpoint, body, inputs_ok=inputs_ok)
        except Rejected as exc:
            return self.error(request, exc.code, exc.msg)
        data: dict[str, Any] = {"_id": job.id, "job_id": job.job_id}
        v3 = endpoint in ("faceswap_image", "faceswap_video")
        if v3 or state.config.v4_returns_url:
            data["url"] = state.result_url(job)
        msg = _PATIENT.format(job.kind) if v3 else "OK"
        return self.ok(request, {"code": 1000, "msg": msg, "data": data})

    def _ids(self, request: web.Request, raw: object) -> list[str] | web.Response:
        config = self.state.config
        if not isinstance(raw, str) or not raw.strip(","):
            return self.error(request, 1003, "_ids is required")
        ids = list(dict.fromkeys(s.strip().lower() for s in raw.split(",") if s.strip()))
        if config.max_ids is not None and len(ids) > config.max_ids:
            return self.error(request, 1003, f"at most {config.max_ids} _ids per call")
        malformed = [i for i in ids if not _OBJECT_ID.match(i)]
        if malformed and config.malformed_ids == "error":
            return self.error(request, 1003, f"invalid _id: {malformed[0]}")
        return [i for i in ids if _OBJECT_ID.match(i)]

    async def list_results(self, request: web.Request) -> web.Response:
        state = self.state
        ids = self._ids(request, request.query.get("_ids"))
        if isinstance(ids, web.Response):
            return ids
        jobs = [job for i in ids if (job := state.store.live(i)) is not None]
        if len(jobs) < len(ids) and state.config.unknown_ids == "error":
            return self.error(request, 1003, "unknown _id")
        if state.config.result_order == "created":
            jobs.sort(key=lambda j: (j.created_at, j.id))
        elif state.config.result_order == "shuffled":
            state.store.shuffle(jobs)
        items = [state.store.item(job, state.base_url) for job in jobs]
        return self.ok(request, {"code": 1000, "msg": "OK", "data": {"result": items}})

    async def delete_results(self, request: web.Request) -> web.Response:
        body = await self.json_body(request)
        ids = self._ids(request, body.get("_ids") if isinstance(body, dict) else None)
        if isinstance(ids, web.Response):
            return ids
        now = self.state.clock.now()
        for i in ids:
            job = self.state.store.live(i)
            if job is not None:
                job.deleted_at = now
        return self.ok(request, {"code": 1000, "msg": "OK"})

    async def quota(self, request: web.Request) -> web.Response:
        credit = _number(self.state.store.credit)
        return self.ok(request, {"code": 1000, "msg": "OK", "data": {"credit": credit}})

    async def detect_faces(self, request: web.Request) -> web.Response:
        body = await self.json_body(request)
        status, out = detect_faces(body, self.state.config, self.state.base_url)
        return self.detector(request, status, out)

    async def analyze_frames(self, request: web.Request) -> web.Response:
        body = await self.json_body(request)
        status, out = analyze_frames(body, self.state.config, self.state.base_url)
        return self.detector(request, status, out)

    async def detect_legacy(self, request: web.Request) -> web.Response:
        body = await self.json_body(request)
        state = self.state
        status, out = detect_legacy(body, state.config, state.base_url, state.detect_rng)
        return self.detector(request, status, out)

    async def result_file(self, request: web.Request) -> web.StreamResponse:
        state, name = self.state, request.match_info["name"]
        if _GENERATED.match(name):
            data = png_bytes(name)
            etag = f'"{md5_of(iter([data]))}"'
            return web.Response(body=data, content_type="image/png", headers={"ETag": etag})
        match = _RESULT.match(name)
        job = state.store.live(match.group(1)) if match else None
        now = state.clock.now()
        done = job.succeeded_at(now) if job is not None else None
        if (
            job is None
            or job.file_name != name
            or done is None
            or now >= done + state.config.result_ttl
        ):
            status = state.config.missing_file_status
            return web.Response(
                status=status, text="Not Found" if status == 404 else "Access Denied"
            )
        if job.kind == "image":
            data = png_bytes(f"{job.id} {job.job_id}", width=64, height=48)
            etag = f'"{md5_of(iter([data]))}"'
            return web.Response(body=data, content_type="image/png", headers={"ETag": etag})
        label, size = f"{job.id} {job.job_id}", state.config.video_size

        def chunks() -> Any:
            return mp4_chunks(
                label, size, created=job.created_at, duration=state.config.video_duration
            )

        cache_key = (job.id, size)
        if cache_key not in self._md5:
            self._md5[cache_key] = md5_of(chunks())
        response = web.StreamResponse(
            headers={"Content-Type": "video/mp4", "ETag": f'"{self._md5[cache_key]}"'}
        )
        total = mp4_size(label, size)
        response.content_length = total
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        # drop_after on a video download: half the body, then the connection is cut.
        cut = total // 2 if id(request) in self._cut else None
        sent = 0
        for chunk in chunks():
            if cut is not None and sent + len(chunk) > cut:
                await response.write(chunk[: cut - sent])
                _drop(request)
                return response
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response


def _drop(request: web.Request) -> web.Response:
    """Close the TCP connection without answering (the response returned is never sent)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


def build_app(state: ServerState) -> web.Application:
    """The application serving every emulated endpoint from ``state``."""
    api = _Api(state)
    app = web.Application(middlewares=[api.middleware], client_max_size=16 * 1024 * 1024)
    add = app.router.add_post
    add("/api/open/v3/getToken", api.get_token, name="get_token")
    add("/api/open/v4/faceswap/faceswapPlusByImage", api.submit, name="faceswap_plus")
    add("/api/open/v4/faceswap/faceswapByImage", api.submit, name="faceswap_pro")
    add("/api/open/v3/faceswap/highquality/specifyimage", api.submit, name="faceswap_image")
    add("/api/open/v3/faceswap/highquality/specifyvideo", api.submit, name="faceswap_video")
    app.router.add_get(
        "/api/open/v3/faceswap/result/listbyids", api.list_results, name="list_results"
    )
    add("/api/open/v3/faceswap/result/delbyids", api.delete_results, name="delete_results")
    app.router.add_get("/api/open/v3/faceswap/quota/info", api.quota, name="quota")
    add("/interface/detect-api/detect_faces", api.detect_faces, name="detect_faces")
    add(
        "/interface/detect-api/faceswap/analyze_frames",
        api.analyze_frames,
        name="analyze_frames",
    )
    add("/detect", api.detect_legacy, name="detect_legacy")
    app.router.add_get("/results/{name:.+}", api.result_file, name="result_file")
    return app
