"""OpenTelemetry for aiomsal: a span per token request, and metrics of the cache and refreshes.

::

    pip install 'aiomsal[opentelemetry]'        # opentelemetry-api only

    from aiomsal.integrations.opentelemetry import instrument

    instrumentation = instrument(app)            # the global tracer and meter providers
    ...
    instrumentation.uninstrument()

Spans (``aiomsal token request``, kind CLIENT, one per request to the token endpoint):
``aiomsal.grant``, ``aiomsal.tenant``, ``aiomsal.client_id``, ``http.response.status_code``,
``aiomsal.retries``, ``aiomsal.throttled``, ``aiomsal.coalesced_waiters``,
``aiomsal.correlation_id`` and, on failure, ``error.type`` (the OAuth error code or the
outcome). A token, a secret or an assertion is never an attribute.

Metrics, each with ``aiomsal.client_id`` and (but for storage errors) ``aiomsal.tenant``:
``aiomsal.cache.hits``, ``aiomsal.cache.misses``, ``aiomsal.cache.coalesced`` (waiters that
joined a request in flight), ``aiomsal.refresh.background`` (``aiomsal.outcome`` ok or
failed), ``aiomsal.storage.errors`` (read from the application's counters when the reader
collects, so a cache hit costs nothing more), ``aiomsal.token_requests`` (``aiomsal.grant``,
``aiomsal.outcome``) and the histogram ``aiomsal.acquire.duration`` in seconds of the calls
that missed the cache (``aiomsal.coalesced``, ``aiomsal.outcome``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from .._apps._application import ClientApplication
from .._errors import MsalConfigurationError
from .._statistics import CacheStatistics, TokenRequestEvent

__all__ = ["Instrumentation", "instrument"]

_SCOPE = "aiomsal"
SPAN_NAME = "aiomsal token request"

#: Observable counters read off ``statistics(by_tenant=True)``: name -> (field, description).
_TENANT_COUNTERS = {
    "aiomsal.cache.hits": ("hits", "calls answered from the cache"),
    "aiomsal.cache.misses": ("misses", "calls that found no servable token"),
    "aiomsal.cache.coalesced": ("coalesced", "misses that joined a request in flight"),
}


class _Metrics:
    """The instruments of one meter provider, shared by every application instrumented on it."""

    def __init__(self, provider: MeterProvider | None) -> None:
        meter = metrics.get_meter(_SCOPE, meter_provider=provider)
        self.apps: weakref.WeakSet[ClientApplication] = weakref.WeakSet()
        for name, (field, description) in _TENANT_COUNTERS.items():
            meter.create_observable_counter(
                name, callbacks=[self._per_tenant(field)], unit="{call}", description=description
            )
        meter.create_observable_counter(
            "aiomsal.refresh.background",
            callbacks=[self._refreshes],
            unit="{refresh}",
            description="background refreshes of tokens in use, by outcome",
        )
        meter.create_observable_counter(
            "aiomsal.storage.errors",
            callbacks=[self._storage_errors],
            unit="{operation}",
            description="cache storage operations that failed or timed out",
        )
        self.requests = meter.create_counter(
            "aiomsal.token_requests",
            unit="{request}",
            description="token requests to the authority, by grant and outcome",
        )
        self.duration = meter.create_histogram(
            "aiomsal.acquire.duration",
            unit="s",
            description="time until a call that missed the cache got its answer",
        )

    def _snapshots(self) -> Iterable[tuple[str, CacheStatistics]]:
        for app in list(self.apps):
            yield app.client_id, app.statistics(by_tenant=True)

    def _per_tenant(self, field: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for client_id, stats in self._snapshots():
                for tenant, counts in stats.tenants.items():
                    attributes = {"aiomsal.client_id": client_id, "aiomsal.tenant": tenant}
                    yield Observation(getattr(counts, field), attributes)

        return observe

    def _refreshes(self, options: CallbackOptions) -> Iterable[Observation]:
        for client_id, stats in self._snapshots():
            for tenant, counts in stats.tenants.items():
                base = {"aiomsal.client_id": client_id, "aiomsal.tenant": tenant}
                yield Observation(counts.background_refreshes, {**base, "aiomsal.outcome": "ok"})
                yield Observation(counts.refresh_failures, {**base, "aiomsal.outcome": "failed"})

    def _storage_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        for client_id, stats in self._snapshots():
            yield Observation(stats.storage_errors, {"aiomsal.client_id": client_id})


_METRICS: weakref.WeakKeyDictionary[object, _Metrics] = weakref.WeakKeyDictionary()
_GLOBAL = object()  # the key of the global meter provider's instruments


def _metrics_for(provider: MeterProvider | None) -> _Metrics:
    key = _GLOBAL if provider is None else provider
    found = _METRICS.get(key)
    if found is None:
        found = _METRICS[key] = _Metrics(provider)
    return found


class Instrumentation:
    """The observer :func:`instrument` installs on an application."""

    def __init__(
        self,
        app: ClientApplication,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self._app = weakref.ref(app)
        self._client_id = app.client_id
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        self._metrics = _metrics_for(meter_provider)
        self._metrics.apps.add(app)

    def uninstrument(self) -> None:
        """Stop reporting this application (idempotent)."""
        app = self._app()
        if app is not None:
            self._metrics.apps.discard(app)
            if app._counters.observer is self:
                app._counters.observer = None

    # -- the Observer protocol (aiomsal._statistics.Observer) ----------------------------

    def token_request(self, event: TokenRequestEvent) -> None:
        attributes: dict[str, str | int | bool] = {
            "aiomsal.client_id": self._client_id,
            "aiomsal.grant": event.grant,
            "aiomsal.tenant": event.tenant,
            "aiomsal.retries": event.attempts - 1,
            "aiomsal.throttled": event.throttled,
            "aiomsal.coalesced_waiters": event.waiters,
            "aiomsal.outcome": event.outcome,
        }
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.correlation_id:
            attributes["aiomsal.correlation_id"] = event.correlation_id
        if event.outcome != "ok":
            attributes["error.type"] = event.error or event.outcome
        span = self._tracer.start_span(
            SPAN_NAME, kind=SpanKind.CLIENT, start_time=event.started_ns, attributes=attributes
        )
        if event.outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, event.error or event.outcome))
        span.end(end_time=event.ended_ns)
        self._metrics.requests.add(
            1,
            {
                "aiomsal.client_id": self._client_id,
                "aiomsal.tenant": event.tenant,
                "aiomsal.grant": event.grant,
                "aiomsal.outcome": event.outcome,
            },
        )

    def acquired(self, tenant: str, seconds: float, *, coalesced: bool, failed: bool) -> None:
        self._metrics.duration.record(
            seconds,
            {
                "aiomsal.client_id": self._client_id,
                "aiomsal.tenant": tenant,
                "aiomsal.coalesced": coalesced,
                "aiomsal.outcome": "failed" if failed else "ok",
            },
        )


def instrument(
    app: ClientApplication,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Instrumentation:
    """Report ``app``'s token requests as spans and its counters as metrics.

    Without providers, OpenTelemetry's global ones are used. Instrumenting an
    application again replaces its earlier instrumentation.
    """
    if not isinstance(app, ClientApplication):
        raise MsalConfigurationError("instrument() takes an aiomsal application")
    previous = app._counters.observer
    if isinstance(previous, Instrumentation):
        previous.uninstrument()
    instrumentation = Instrumentation(app, tracer_provider, meter_provider)
    app._counters.observer = instrumentation
    return instrumentation
