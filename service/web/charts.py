"""A story's coverage as pictures, drawn server-side as inline SVG: the geometry is
computed here, the templates only place it (labels go through auto-escaping like any
text). Nothing is scripted; an SVG with a viewBox scales to any width."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from service.models import OutletCoverage

WIDTH = 640
LABEL_W = 170  # the outlet names' column
ROW_H = 26
TOP = 8
AXIS_H = 26
UNKNOWN_OUTLET = "outlet unknown"


def _label(outlet: str | None, limit: int = 24) -> str:
    name = outlet or UNKNOWN_OUTLET
    return name if len(name) <= limit else name[: limit - 1] + "…"


@dataclass(frozen=True)
class Bar:
    label: str
    articles: int
    copies: int
    y: float
    own_width: float  # the outlet's own articles
    copies_width: float  # syndicated copies of another outlet's text, drawn after them


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    label_w: int
    row_h: int
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # x, value


def coverage_bars(outlets: Sequence[OutletCoverage]) -> BarChart:
    """Articles per outlet, most first; syndicated copies shaded apart."""
    rows = sorted(outlets, key=lambda o: (-len(o.articles), _label(o.outlet).lower()))
    most = max((len(o.articles) for o in rows), default=1) or 1
    plot = WIDTH - LABEL_W - 40
    bars = []
    for i, o in enumerate(rows):
        own = len(o.articles) - o.copies
        bars.append(
            Bar(
                label=_label(o.outlet),
                articles=len(o.articles),
                copies=o.copies,
                y=TOP + i * ROW_H,
                own_width=plot * own / most,
                copies_width=plot * o.copies / most,
            )
        )
    step = max(1, -(-most // 5))  # at most ~5 ticks, whole articles
    ticks = [(LABEL_W + plot * v / most, v) for v in range(0, most + 1, step)]
    height = TOP + len(rows) * ROW_H + AXIS_H
    return BarChart(WIDTH, height, LABEL_W, ROW_H, bars, ticks)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive and aware dates can't be compared: a naive one is read as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Dot:
    label: str
    when: str  # the date as shown
    x: float
    y: float


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    label_w: int
    dots: list[Dot]
    start: str
    end: str
    undated: list[str]  # outlets with no dated article


def first_appearances(outlets: Sequence[OutletCoverage]) -> Timeline:
    """When each outlet first covered the story, on one time axis, first at the top."""
    dated = [(o, t) for o in outlets if (t := _parse(o.first_covered)) is not None]
    dated.sort(key=lambda pair: pair[1])
    undated = [_label(o.outlet) for o in outlets if _parse(o.first_covered) is None]
    plot = WIDTH - LABEL_W - 40
    dots: list[Dot] = []
    if dated:
        t0, t1 = dated[0][1], dated[-1][1]
        span = (t1 - t0).total_seconds()
        for i, (o, t) in enumerate(dated):
            frac = (t - t0).total_seconds() / span if span else 0.0
            dots.append(
                Dot(
                    label=_label(o.outlet),
                    when=t.strftime("%Y-%m-%d %H:%M"),
                    x=LABEL_W + 10 + plot * frac,
                    y=TOP + i * ROW_H + ROW_H / 2,
                )
            )
    height = TOP + max(len(dots), 1) * ROW_H + AXIS_H
    return Timeline(
        WIDTH,
        height,
        LABEL_W,
        dots,
        start=dots[0].when if dots else "",
        end=dots[-1].when if dots else "",
        undated=undated,
    )
