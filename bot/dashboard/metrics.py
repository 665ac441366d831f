"""Prometheus metrics: what the database knows, read at scrape time, plus the webhook endpoint's own counts.

The Hub request budget's figures (requests by caller, 429s, what is left of the window) are this process's.
Event, job and duration figures come from the store, not from counters in this process, so they are right
after a restart and the same whichever process (or machine, on PostgreSQL) is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from state import JobStatus, Store

DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class StoreCollector(Collector):
    """Events by scope and outcome, jobs by status, queue depth, build and publish durations."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        events = CounterMetricFamily(
            "quantbot_events",
            "Events stored, by scope and outcome (pending until processed).",
            labels=["scope", "outcome"],
        )
        for (scope, outcome), count in sorted(self._store.events.counts().items()):
            events.add_metric([scope, outcome], count)
        yield events

        counts = self._store.jobs.counts()
        jobs = GaugeMetricFamily("quantbot_jobs", "Jobs in each status.", labels=["status"])
        for status, count in counts.items():
            jobs.add_metric([status.value], count)
        yield jobs
        yield GaugeMetricFamily(
            "quantbot_queue_depth", "Jobs queued and not yet claimed.", value=counts[JobStatus.QUEUED]
        )

        for kind, help_ in (("build", "running → built"), ("publish", "publishing → published")):
            figures = self._store.jobs.durations(kind, DURATION_BUCKETS)  # type: ignore[arg-type]
            buckets = [(str(bound), count) for bound, count in figures.buckets] + [("+Inf", figures.count)]
            yield HistogramMetricFamily(
                f"quantbot_{kind}_duration_seconds",
                f"Seconds from {help_}.",
                buckets=buckets,
                sum_value=figures.total,
            )


class WebhookMetrics:
    """The webhook endpoint's answers and acknowledgement latency (this process only)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "quantbot_webhook_requests", "Webhook requests by HTTP status.", ["status"], registry=registry
        )
        self.ack_seconds = Histogram(
            "quantbot_webhook_ack_seconds",
            "Seconds to store and acknowledge a webhook.",
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.internal_errors = Counter(
            "quantbot_http_internal_errors",
            "Requests that ended in an unexpected server error.",
            registry=registry,
        )


class Budget(Protocol):
    """What the metrics read of the Hub request budget (`bot.budget.RequestBudget`)."""

    def snapshot(self) -> dict[str, Any]: ...


class BudgetCollector(Collector):
    """Hub requests by caller and bucket, 429s, requests held back, where the token stands (this process)."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        figures = self._budget.snapshot()
        sent = CounterMetricFamily(
            "quantbot_hub_requests", "Hub requests sent, by caller and bucket.", labels=["caller", "bucket"]
        )
        for caller, buckets in figures["requests"].items():
            for bucket, count in buckets.items():
                sent.add_metric([caller, bucket], count)
        yield sent
        for name, key, help_ in (
            ("quantbot_hub_rate_limited", "rate_limited", "Hub requests answered 429, by caller."),
            ("quantbot_hub_deferred", "deferred", "Hub requests not sent: the caller's budget was spent."),
        ):
            family = CounterMetricFamily(name, help_, labels=["caller"])
            for caller, count in figures[key].items():
                family.add_metric([caller], count)
            yield family
        left = GaugeMetricFamily(
            "quantbot_hub_budget_remaining", "Requests left in this 5-minute window.", labels=["bucket"]
        )
        limit = GaugeMetricFamily(
            "quantbot_hub_budget_limit", "Requests allowed per 5-minute window.", labels=["bucket"]
        )
        for bucket, window in figures["buckets"].items():
            left.add_metric([bucket], window["remaining"])
            limit.add_metric([bucket], window["limit"])
        yield left
        yield limit


def make_registry(store: Store, budget: Budget | None = None) -> tuple[CollectorRegistry, WebhookMetrics]:
    """A registry of its own per app (tests run several apps in one process)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(store))
    if budget is not None:
        registry.register(BudgetCollector(budget))
    return registry, WebhookMetrics(registry)
