"""Request counts and latency histograms in the Prometheus text exposition format (0.0.4).

:class:`RequestMetrics` counts requests by ``(endpoint, model, status)`` and observes their
latency into fixed buckets by ``(endpoint, model)``; :meth:`~RequestMetrics.render` writes
``genrec_requests_total`` (counter) and ``genrec_request_seconds`` (histogram) the way
``prometheus_client`` would, so any Prometheus server can scrape ``GET /metrics``.

Example:
    >>> m = RequestMetrics()
    >>> m.observe("/health", "", 200, 0.002)
    >>> 'genrec_requests_total{endpoint="/health",model="",status="200"} 1' in m.render()
    True
"""

from __future__ import annotations

import bisect
import threading

# Upper bounds in seconds (the last bucket, +Inf, is implied).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Thread-safe counters and latency histograms per endpoint and model."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._hist: dict[tuple[str, str], list] = {}  # key -> [bucket counts..., sum, count]

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        key = (endpoint, model)
        slot = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            counted = (endpoint, model, str(status))
            self._counts[counted] = self._counts.get(counted, 0) + 1
            hist = self._hist.setdefault(key, [0] * (len(BUCKETS) + 1) + [0.0, 0])
            hist[slot] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def render(self) -> str:
        """The exposition text (``text/plain; version=0.0.4``)."""
        with self._lock:
            counts = sorted(self._counts.items())
            hists = sorted((k, list(v)) for k, v in self._hist.items())
        lines = [
            "# HELP genrec_requests_total Requests answered, by endpoint, model and status.",
            "# TYPE genrec_requests_total counter",
        ]
        lines += [
            f"genrec_requests_total{_labels(endpoint=e, model=m, status=s)} {n}"
            for (e, m, s), n in counts
        ]
        lines += [
            "# HELP genrec_request_seconds Time to answer a request, by endpoint and model.",
            "# TYPE genrec_request_seconds histogram",
        ]
        for (endpoint, model), hist in hists:
            running = 0
            for bound, n in zip([*map(_number, BUCKETS), "+Inf"], hist[: len(BUCKETS) + 1]):
                running += n
                lines.append(
                    f"genrec_request_seconds_bucket"
                    f"{_labels(endpoint=endpoint, model=model, le=bound)} {running}"
                )
            labels = _labels(endpoint=endpoint, model=model)
            lines.append(f"genrec_request_seconds_sum{labels} {hist[-2]!r}")
            lines.append(f"genrec_request_seconds_count{labels} {hist[-1]}")
        return "\n".join(lines) + "\n"


def _number(x: float) -> str:
    return repr(float(x))


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


__all__ = ["BUCKETS", "RequestMetrics"]
