"""The farm's HTTP API (FastAPI): claims, releases, status, config, telemetry, metrics.

FastAPI because request bodies are validated by pydantic models (a malformed body gets
a 422 that names the field) and the OpenAPI document (``/docs``, ``/openapi.json``)
comes from the same models; uvicorn serves it. Every route except ``/api/health`` and
the challenge needs credentials, checked by :class:`farm_server.auth.Guard` before
routing or body parsing: ``Authorization: Bearer <token>`` (the token file in the farm's
home), or a request signed with the session key a challenge opened (the plugin and the
CLI: they never send the token).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, cast
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    ValidationError,
    create_model,
)
from starlette.concurrency import run_in_threadpool

from farm_server.apidocs import add_docs_page
from farm_server.auth import Guard, Sessions
from farm_server.config import FarmConfig, describe_errors
from farm_server.errors import InterpreterRejected
from shadowfarm_wire.endings import MAX_REASON, WorkerEnding
from shadowfarm_wire.plugins import PLUGIN_NAME
from shadowfarm_wire.profile import Profile
from shadowfarm_wire.trust import CHALLENGE_PATH

if TYPE_CHECKING:
    from farm_server.farm import Farm

__all__ = ["create_app"]

#: a run posts a few samples a second; a post holds seconds of them, not a flood
MAX_SAMPLES_PER_POST = 2000

Name = Annotated[str, StringConstraints(min_length=1, max_length=512)]
NodeId = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
PluginName = Annotated[str, StringConstraints(pattern=PLUGIN_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChallengeBody(Strict):
    client_nonce: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,128}$")]


class ProfileBody(Strict):
    interpreter: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    python_version: Name
    distributions_hash: Name
    rootdir: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    warm_modules: list[Name] = Field(default_factory=list, max_length=500)


class ClaimBody(Strict):
    profile: ProfileBody
    count: int = Field(ge=1, le=256, description="workers wanted (xdist -n)")
    modules: list[Name] = Field(
        default_factory=list, max_length=5000, description="modules the run's tests import"
    )
    shadow_tests: list[NodeId] = Field(
        default_factory=list, max_length=10_000, description="cheap tests to warm with"
    )
    plugins: list[PluginName] | None = Field(
        default=None,
        max_length=200,
        description="the run's -p options (NAME or no:NAME): warm-ups load the same plugins",
    )
    client: dict[Name, str | int | FiniteFloat | bool | None] = Field(
        default_factory=dict, max_length=50
    )


class ReleaseBody(Strict):
    """How the worker's part in the run ended: what the farm learns the max age from."""

    ended: Literal["finished", "crashed", "replaced", "drained"]
    cause: Literal["", "memory", "errors", "pressure", "age", "crash"] = ""
    tests: int = Field(default=0, ge=0, le=10_000_000, description="tests it ran")
    seconds: FiniteFloat = Field(default=0.0, ge=0, le=1e7, description="seconds it worked")
    reason: Annotated[str, StringConstraints(max_length=MAX_REASON)] = ""


class EndingsBody(Strict):
    endings: list[ReleaseBody] = Field(
        max_length=256, description="how a run's workers that the farm did not provide ended"
    )


class ScaleBody(Strict):
    min_warm: int | None = Field(default=None, ge=0, le=256)
    max_warm: int | None = Field(default=None, ge=0, le=256)


class DrainBody(Strict):
    profile: str = Field(default="all", description="a profile key prefix, or 'all'")


def _finite(value: Any, depth: int = 0) -> Any:
    """Reject NaN and infinities anywhere in a sample (JSON has no such numbers)."""
    if depth > 8:
        raise ValueError("samples nest at most 8 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"numbers must be finite, got {value!r}")
    if isinstance(value, dict):
        for item in value.values():
            _finite(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _finite(item, depth + 1)
    return value


Sample = Annotated[dict[Name, Any], Field(max_length=100), AfterValidator(_finite)]


class TelemetryBody(Strict):
    claim_id: Name | None = None
    worker_id: Name | None = None
    samples: list[Sample] = Field(
        max_length=MAX_SAMPLES_PER_POST, description="at most this many samples per post"
    )


#: every FarmConfig field, optional, plus per-profile scaling
ConfigUpdate: Any = create_model(  # type: ignore[call-overload]
    "ConfigUpdate",
    __config__=ConfigDict(extra="forbid"),
    profiles=(dict[str, ScaleBody], Field(default_factory=dict)),
    **{name: (Optional[field.annotation], None) for name, field in FarmConfig.model_fields.items()},  # noqa: UP045
)


def _message(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)


def create_app(farm: Farm) -> FastAPI:
    app = FastAPI(
        title="pytest-shadowfarm farm",
        version="1",
        description="Warm pytest-xdist workers on demand. Every route except /api/health and "
        f"{CHALLENGE_PATH} needs 'Authorization: Bearer <token>' (the token file in the "
        "farm's home directory) or a request signed with a challenge's session key.",
        # FastAPI's own pages load their scripts from a CDN: a farm on a host without
        # internet access would serve a blank /docs. Ours is one self-contained page.
        docs_url=None,
        redoc_url=None,
    )
    add_docs_page(app)
    sessions = Sessions(farm.token)
    app.add_middleware(
        Guard,
        sessions=sessions,
        port=lambda: urlsplit(farm.url).port or 0,
        token_file=str(farm.home.token_file),
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what: the rejected input itself may be a NaN that JSON cannot
        # carry (a 500 instead of the 422), or a megabyte of someone's body.
        errors = jsonable_encoder(
            [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        )
        return JSONResponse({"detail": errors, "message": _message(errors)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        # Every refusal carries one readable "message", as a validation error's does.
        message = exc.detail if isinstance(exc.detail, str) else _message(exc.detail or [])
        return JSONResponse(
            {"detail": exc.detail, "message": message},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.get("/api/health")
    def health() -> JSONResponse:
        """200 when the farm can work; 503 with the problems (full disk) when it cannot."""
        report = farm.health()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    @app.post(CHALLENGE_PATH)
    def challenge(body: ChallengeBody) -> dict[str, str]:
        """Prove this is the farm (HMAC with the token) and open a signed session."""
        return sessions.challenge(body.client_nonce)

    @app.post("/api/workers/claim")
    async def claim(body: ClaimBody, request: Request) -> Any:
        try:
            profile = Profile.from_dict(body.profile.model_dump())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        try:
            result = await run_in_threadpool(
                farm.claim,
                profile,
                body.count,
                body.modules,
                body.shadow_tests,
                body.client,
                body.plugins,
            )
        except InterpreterRejected as exc:
            raise HTTPException(403, str(exc)) from None
        if result.workers and await request.is_disconnected():
            # The client gave up (its timeout) before our answer: nobody will connect to
            # these workers; back to warm rather than ended after claim_timeout_s.
            farm.pool.unclaim(result.claim_id)
            return Response(status_code=499)
        learned = await run_in_threadpool(farm.learned, result.profile_key)
        return {
            "claim_id": result.claim_id,
            "profile_key": result.profile_key,
            "registered": result.registered,
            "warming": result.warming,
            "max_age": learned.max_age.to_dict(),
            "workers": [
                {"id": w.id, "socket": w.socket, "token": w.token, "modules": sorted(w.modules)}
                for w in result.workers
            ],
        }

    @app.post("/api/workers/{worker_id}/release")
    def release(
        worker_id: Annotated[str, StringConstraints(max_length=64)],
        body: ReleaseBody | None = None,
    ) -> dict[str, Any]:
        """The run is done with the worker; the body (optional) says how it ended."""
        ending = WorkerEnding(**body.model_dump()) if body is not None else None
        worker = farm.release(worker_id, ending)
        if worker is None:
            raise HTTPException(404, f"no worker {worker_id!r} in this farm")
        return {"id": worker.id, "state": worker.state}

    @app.post("/api/profiles/{profile_key}/endings")
    def endings(
        profile_key: Annotated[str, StringConstraints(max_length=64)], body: EndingsBody
    ) -> dict[str, Any]:
        """How a run's own (cold) workers of a profile ended: the profile learns from them
        as from the farm's workers (the release body says it for those)."""
        found = [WorkerEnding(**e.model_dump()) for e in body.endings]
        if not farm.record_endings(profile_key, found):
            raise HTTPException(404, f"no live profile {profile_key!r} in this farm")
        return {"recorded": len(found)}

    @app.get("/api/swarm/status")
    def status() -> dict[str, Any]:
        return farm.status()

    @app.get("/api/swarm/config")
    def get_config() -> dict[str, Any]:
        return farm.pool.config.model_dump()

    @app.put("/api/swarm/config")
    def put_config(update: ConfigUpdate) -> dict[str, Any]:
        body = cast(Any, update)
        changes = {k: v for k, v in body.model_dump(exclude={"profiles"}).items() if v is not None}
        try:
            new = farm.pool.config.updated(changes)
        except ValidationError as exc:
            raise HTTPException(422, describe_errors(exc)) from None
        scaled = {}
        for prefix, scale in body.profiles.items():
            keys = farm.pool.scale(prefix, scale.min_warm, scale.max_warm)
            if not keys:
                raise HTTPException(404, f"no live profile matches {prefix!r}")
            scaled[prefix] = keys
        farm.set_config(new)
        return {**new.model_dump(), "scaled": scaled}

    @app.post("/api/swarm/drain")
    def drain(body: DrainBody) -> dict[str, Any]:
        return {"drained": farm.pool.drain(body.profile)}

    @app.post("/api/swarm/telemetry")
    def telemetry(body: TelemetryBody) -> dict[str, Any]:
        row = farm.store.add_telemetry(farm.clock(), body.claim_id, body.worker_id, body.samples)
        return {"stored": len(body.samples), "id": row}

    @app.get("/api/swarm/telemetry")
    def recent_telemetry(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        return {"telemetry": farm.store.recent_telemetry(limit)}

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(farm.registry), media_type=CONTENT_TYPE_LATEST)

    return app
