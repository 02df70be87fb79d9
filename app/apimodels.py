"""The REST API's request and response models (pydantic): validation and the OpenAPI document
come from these same classes. Engine documents (timing rows, insights, strategy calls) are open
objects: their fields are the engine's contracts, listed where they are defined."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Open(BaseModel):
    """An engine document: the listed fields, and whatever else the engine wrote."""

    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """What was wrong: the field and the reason."""

    field: str
    reason: str


class ErrorDoc(BaseModel):
    error: Error
    errors: list[Error] | None = None


class Health(BaseModel):
    status: str                          # "ok", or "degraded" with the conditions (app/health.py)
    redis_ms: float
    conditions: list[str] = []
    model: dict[str, Any] = {}
    redis_persistence: dict[str, Any] = {}
    disk: dict[str, Any] = {}
    ingest: dict[str, dict[str, int]] = {}    # rejected by reason class, dropped by cause


class SessionInfo(Open):
    session: str
    track: str | None = None
    race: str | None = None
    lap: str | None = None
    flag: str | None = None


class Sessions(BaseModel):
    sessions: list[SessionInfo]


class CarRow(Open):
    """A car's live timing on the running order (engine/timing.py)."""

    car: str
    position: int | None = None
    laps: int | None = None
    last_lap_s: float | None = None
    best_lap_s: float | None = None
    gap_s: float | None = None


class Board(Open):
    cars: list[CarRow]


class Cars(BaseModel):
    session: str
    cars: list[CarRow]


class CarInsight(BaseModel):
    """Everything the engine knows about a car now: one entry per producer (timing, lap, tyre
    state and forecast, strategy call, driver), plus the car's newest alerts."""

    session: str
    car: str
    timing: dict[str, Any] | None = None
    tyre: dict[str, Any] | None = None
    strategy: dict[str, Any] | None = None
    driver: dict[str, Any] | None = None
    other: dict[str, Any] = Field(default_factory=dict, description="producers not listed above")
    alerts: list[dict[str, Any]] = Field(default_factory=list)


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(50, ge=1, le=1000, description="newest alerts to return")


class Alerts(BaseModel):
    session: str
    alerts: list[dict[str, Any]]


class SimulateRequest(BaseModel):
    """A strategy call for one car on the session's live board, `races` Monte Carlo races per strategy."""

    model_config = ConfigDict(extra="forbid")
    session: Id
    car: Id
    races: int = Field(2000, ge=100, le=20_000)
    seed: int = Field(0, ge=0, le=2 ** 31 - 1)


class StrategyCall(Open):
    """engine/strategy/call.py `recommend`: strategies compared, pit window, radio line, threats."""

    session: str
    car: str
    races: int
    compute_ms: float | None = None


class Replay(BaseModel):
    track: str
    race: int
    session: str


class Replays(BaseModel):
    recorded: list[Replay]


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    track: Annotated[str, Field(min_length=1, max_length=64)]
    race: int = Field(ge=1, le=99)
    speed: float = Field(10.0, ge=0.0, le=1000.0, description="x real time; 0 = as fast as possible")


class ReplayStarted(BaseModel):
    session: str
    pid: int


class Whoami(BaseModel):
    name: str
    role: str | None
    kind: str
    scopes: list[str] | None = None


class User(BaseModel):
    name: str
    role: str


class Users(BaseModel):
    users: list[User]


class IngestAnswer(BaseModel):
    accepted: int
    rejected: int
    errors: list[dict[str, Any]]


class IngestStats(BaseModel):
    processes: dict[str, dict[str, float]]


class FeedStats(Open):
    clients: int
    frames: int


class ReportQuery(BaseModel):
    """Which cars the post-race report covers and the gap chart's reference car."""

    model_config = ConfigDict(extra="forbid")
    car: Id | None = Field(None, description="only this car (default: the whole field)")
    gap_to: Id | None = Field(None, description="the gap chart against this car (default: the leader)")


class ExportQuery(BaseModel):
    """The export's file format and, optionally, one car."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["csv", "parquet"] = "csv"
    car: Id | None = Field(None, description="only this car (default: every car)")
