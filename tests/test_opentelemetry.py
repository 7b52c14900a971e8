"""aiomsal.integrations.opentelemetry, read back with the SDK's in-memory exporter and reader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from aiomsal import ConfidentialClientApplication, MsalError, MsalServiceError
from aiomsal.integrations.opentelemetry import SPAN_NAME, instrument
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import GRAPH, SECRET

pytestmark = pytest.mark.anyio

CLIENT = "otel-client"
WAITERS = 100


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def reader() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    metric_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider, metric_reader
    provider.shutdown()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=VirtualClock()) as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Every data point read now, by metric name: (attributes, point)."""
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), point))
    return found


def value(
    found: dict[str, list[tuple[dict[str, Any], Any]]], name: str, **attributes: object
) -> int:
    wanted = {f"aiomsal.{k}": v for k, v in attributes.items()}
    return sum(
        p.value for a, p in found.get(name, []) if wanted.items() <= a.items()
    )


def make_app(fake: FakeAuthority) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=fake.authority("contoso"), clock=fake.clock
    )


async def test_a_span_per_token_request_and_the_metrics_per_tenant(
    fake: FakeAuthority,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    (tracer_provider, exporter), (meter_provider, metric_reader) = spans, reader
    fake.latency = 0.05
    async with make_app(fake) as app:
        instrument(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
        async with anyio.create_task_group() as group:  # a cold burst on one key
            for _ in range(WAITERS):
                group.start_soon(app.acquire_token_for_client, GRAPH)
        for _ in range(5):
            await app.acquire_token_for_client(GRAPH)
        fake.fail_next(1, status=400)
        with pytest.raises(MsalServiceError):
            await app.acquire_token_for_client(GRAPH, tenant="fabrikam.example")
        found = points(metric_reader)

    finished: list[ReadableSpan] = list(exporter.get_finished_spans())
    assert [s.name for s in finished] == [SPAN_NAME, SPAN_NAME]
    ok, failed = finished
    assert dict(ok.attributes or {}) == {
        "aiomsal.client_id": CLIENT,
        "aiomsal.grant": "client_credentials",
        "aiomsal.tenant": "contoso",
        "aiomsal.retries": 0,
        "aiomsal.throttled": False,
        "aiomsal.coalesced_waiters": WAITERS,
        "aiomsal.outcome": "ok",
        "http.response.status_code": 200,
        "aiomsal.correlation_id": fake.token_requests[0].correlation_id,
    }
    assert ok.end_time is not None and ok.start_time is not None
    assert ok.end_time - ok.start_time >= 40_000_000  # the fake's 50 ms, in nanoseconds
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["aiomsal.tenant"] == "fabrikam.example"
    assert failed.attributes["http.response.status_code"] == 400
    assert failed.attributes["error.type"] == "invalid_request"
    token = fake.token_requests[0]
    everything = repr([dict(s.attributes or {}) for s in finished]) + repr(found)
    assert SECRET not in everything
    assert "eyJ" not in everything  # no JWT (a token or an assertion)
    assert token.form["client_secret"] not in everything

    assert value(found, "aiomsal.cache.hits", tenant="contoso", client_id=CLIENT) == 5
    assert value(found, "aiomsal.cache.misses", tenant="contoso") == WAITERS
    assert value(found, "aiomsal.cache.coalesced", tenant="contoso") == WAITERS - 1
    assert value(found, "aiomsal.cache.misses", tenant="fabrikam.example") == 1
    assert value(found, "aiomsal.token_requests", grant="client_credentials", outcome="ok") == 1
    assert value(found, "aiomsal.token_requests", outcome="service_error") == 1
    assert value(found, "aiomsal.refresh.background", outcome="failed") == 0
    assert value(found, "aiomsal.storage.errors", client_id=CLIENT) == 0
    durations = {
        (a["aiomsal.tenant"], a["aiomsal.coalesced"], a["aiomsal.outcome"]): p.count
        for a, p in found["aiomsal.acquire.duration"]
    }
    assert durations == {
        ("contoso", False, "ok"): 1,
        ("contoso", True, "ok"): WAITERS - 1,
        ("fabrikam.example", False, "failed"): 1,
    }


async def test_uninstrument_stops_the_reports(
    fake: FakeAuthority,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    (tracer_provider, exporter), (meter_provider, metric_reader) = spans, reader
    async with make_app(fake) as app:
        first = instrument(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
        again = instrument(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
        await app.acquire_token_for_client(GRAPH)
        assert len(exporter.get_finished_spans()) == 1  # instrumenting twice: one report
        first.uninstrument()  # replaced already: no effect
        again.uninstrument()
        await app.acquire_token_for_client(["api://other/.default"])
        assert app._counters.observer is None
    assert len(exporter.get_finished_spans()) == 1
    assert "aiomsal.cache.misses" not in points(metric_reader)
    with pytest.raises(MsalError):
        instrument(object())  # type: ignore[arg-type]
