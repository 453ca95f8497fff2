"""Prometheus metrics, one registry per app so several apps (tests, workers) don't clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from service.models import CitedResult


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "newsdesk_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "newsdesk_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.llm_tokens = Counter(
            "newsdesk_llm_tokens_total", "LLM tokens used", ["kind"], registry=self.registry
        )
        self.citations = Counter(
            "newsdesk_citations_total",
            "Citations checked against source text",
            ["result"],
            registry=self.registry,
        )
        self.answers = Counter(
            "newsdesk_answers_total",
            "Answers, summaries and briefings by engine",
            ["kind", "engine", "refused"],
            registry=self.registry,
        )

    def record(self, kind: str, result: CitedResult) -> None:
        """An answer, summary or briefing served: by engine, what it cost, what was cited."""
        self.answers.labels(kind, result.engine, str(result.refused).lower()).inc()
        self.llm_tokens.labels("prompt").inc(result.usage.prompt_tokens)
        self.llm_tokens.labels("completion").inc(result.usage.completion_tokens)
        self.citations.labels("verified").inc(result.citations_verified)
        self.citations.labels("rejected").inc(result.citations_rejected)
