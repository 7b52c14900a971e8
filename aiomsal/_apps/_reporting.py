"""Token requests as an operator sees them: counts per tenant, log records, observer events.

Every token request gets a correlation id here (sent as ``client-request-id``), is counted
for its tenant, and is logged with its shape (grant, tenant, the scopes' resources) and
never with a secret. A failure is a warning once per failure episode of that shape (until
a request of the same shape succeeds); the repeats, retries included, are debug records.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from .._concurrency._singleflight import current_waiters
from .._errors import MsalError, MsalServiceError, MsalThrottledError, MsalTransportError
from .._protocol._http import HttpRequest, HttpResponse
from .._statistics import Counters, Outcome, TokenRequestEvent

__all__ = ["RequestReport", "RequestReporter"]

_log = logging.getLogger("aiomsal")

_CORRELATION_HEADER = "client-request-id"
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
#: Failure episodes remembered at once (a bound: beyond it, the memory starts again).
_MAX_EPISODES = 4096

Shape = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class RequestReport:
    """A token request on its way: what the reporter needs when it ends."""

    request: HttpRequest
    grant: str
    tenant: str
    resource: str
    correlation_id: str
    started_ns: int


def resource_of(scope_field: str) -> str:
    """The resources a ``scope`` form field names: each scope without its permission."""
    resources = {
        scope.rsplit("/", 1)[0] if "/" in scope else scope
        for scope in scope_field.split()
        if scope not in _RESERVED_SCOPES
    }
    return " ".join(sorted(resources))


def _tenant_of(url: str) -> str:
    path = urlsplit(url).path.strip("/")
    return path.split("/", 1)[0] if path else ""


class RequestReporter:
    """Counts, logs and reports the token requests of one application."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        #: Shapes whose last request failed: their next failure is not a new warning.
        self._failing: set[Shape] = set()

    def start(self, request: HttpRequest) -> RequestReport:
        """Count a request about to be sent; give it a correlation id unless it has one."""
        form = request.form or {}
        correlation_id = request.headers.get(_CORRELATION_HEADER) or str(uuid.uuid4())
        if _CORRELATION_HEADER not in request.headers:
            request = replace(
                request, headers={**request.headers, _CORRELATION_HEADER: correlation_id}
            )
        report = RequestReport(
            request,
            form.get("grant_type", "unknown"),
            _tenant_of(request.url),
            resource_of(form.get("scope", "")),
            correlation_id,
            time.time_ns(),
        )
        self._counters.requests_sent += 1
        self._counters.tenant(report.tenant).requests_sent += 1
        return report

    def end(
        self, report: RequestReport, response: HttpResponse | None, error: MsalError | None
    ) -> None:
        """Count, log and report a request that ended with ``response`` or ``error``."""
        counters, tenant = self._counters, self._counters.tenant(report.tenant)
        if response is not None and response.replayed:  # answered from memory: nothing sent
            counters.requests_sent -= 1
            tenant.requests_sent -= 1
        outcome: Outcome = "ok"
        if error is not None:
            counters.request_failures += 1
            tenant.request_failures += 1
            outcome = _outcome(error)
        self._log(report, response, error, outcome)
        observer = counters.observer
        if observer is not None:
            observer.token_request(
                TokenRequestEvent(
                    grant=report.grant,
                    tenant=report.tenant,
                    outcome=outcome,
                    status=None if response is None else response.status,
                    attempts=2 if isinstance(error, MsalTransportError) else _attempts(response),
                    throttled=isinstance(error, MsalThrottledError)
                    or (response is not None and (response.replayed or response.status == 429)),
                    waiters=current_waiters(),
                    correlation_id=report.correlation_id,
                    error=error.error if isinstance(error, MsalServiceError) else None,
                    started_ns=report.started_ns,
                    ended_ns=time.time_ns(),
                )
            )

    def _log(
        self,
        report: RequestReport,
        response: HttpResponse | None,
        error: MsalError | None,
        outcome: Outcome,
    ) -> None:
        shape = (report.grant, report.tenant, report.resource)
        extra = {
            "correlation_id": report.correlation_id,
            "grant": report.grant,
            "tenant": report.tenant,
            "resource": report.resource,
        }
        status = "no answer" if response is None else str(response.status)
        if error is None:
            if shape in self._failing:
                self._failing.discard(shape)
                _log.info(
                    "token request succeeded again: grant=%s tenant=%s resource=%s "
                    "correlation_id=%s", *shape, report.correlation_id, extra=extra,
                )
            return
        code = error.error if isinstance(error, MsalServiceError) else type(error).__name__
        if shape in self._failing:
            level = logging.DEBUG
        else:
            if len(self._failing) >= _MAX_EPISODES:
                self._failing.clear()
            self._failing.add(shape)
            level = logging.WARNING
        _log.log(
            level,
            "token request failed (%s): grant=%s tenant=%s resource=%s status=%s error=%s "
            "correlation_id=%s%s", outcome, *shape, status, code, report.correlation_id,
            "" if level == logging.DEBUG else "; repeats are logged at debug level until one "
            "succeeds", extra=extra,
        )


def _outcome(error: MsalError) -> Outcome:
    if isinstance(error, MsalThrottledError):
        return "throttled"
    if isinstance(error, MsalServiceError):
        return "service_error"
    return "transport_error"


def _attempts(response: HttpResponse | None) -> int:
    return 1 if response is None else response.attempts
