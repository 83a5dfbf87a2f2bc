"""The figures issue 9 asks for, and each result judged against them."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    workload: str
    label: str
    path: str  # dotted key path into the workload's result
    compare: Callable[[Any, Any], bool]
    threshold: Any
    shown: str  # how the target reads in the results table
    # Judged only when the figure exists: it compares with a control or baseline that a
    # run without them (--no-controls) does not have.
    side_by_side: bool = False

    def value(self, result: dict[str, Any]) -> Any:
        value: Any = result
        for key in self.path.split("."):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def applies(self, result: dict[str, Any]) -> bool:
        return self.workload == result["workload"] and not (
            self.side_by_side and self.value(result) is None
        )

    def judge(self, result: dict[str, Any]) -> dict[str, Any]:
        value = self.value(result)
        met = value is not None and bool(self.compare(value, self.threshold))
        return {"figure": self.label, "value": value, "target": self.shown, "met": met}


ge, le, eq = operator.ge, operator.le, operator.eq
# Ratios project ÷ control (benchmarks/e2e/compare.py), by control.
G1, G2, C4 = "vs.gunicorn-1.", "vs.gunicorn-2.", "vs.channels4."

TARGETS = [
    Target("W1", "requests/s", "requests_per_s", ge, 3200, "≥ 3,200"),
    Target("W1", "latency p99 (ms)", "p99_ms", le, 20, "≤ 20"),
    Target("W1", "non-2xx responses", "non_2xx", eq, 0, "0"),
    Target("W1", "× gunicorn control (same run)", G1 + "requests_per_s", ge, 0.6, "≥ 0.6", True),
    # Issue 20 item 2: ratios in the same run (medians of the interleaved rounds).
    Target(
        "W1", "issue 20: × gunicorn, 1 sync worker", G1 + "requests_per_s", ge, 1.0, "≥ 1.0", True
    ),
    Target(
        "W1", "issue 20: p99 ÷ gunicorn's p99 (1 worker)", G1 + "p99_ms", le, 1.0, "≤ 1.0", True
    ),
    Target(
        "W1",
        "issue 20 stretch: × gunicorn, 2 sync workers",
        G2 + "requests_per_s",
        ge,
        1.0,
        "≥ 1.0",
        True,
    ),
    Target("W1", "at 300 req/s: latency p50 (ms)", "paced_300.p50_ms", le, 3, "≤ 3"),
    Target("W2", "messages/s", "messages_per_s", ge, 6500, "≥ 6,500"),
    Target("W2", "RTT p99 (ms)", "rtt_p99_ms", le, 30, "≤ 30"),
    Target("W2", "issue 20: × Channels 4.3", C4 + "messages_per_s", ge, 1.0, "≥ 1.0", True),
    Target("W2", "issue 20 stretch: × Channels 4.3", C4 + "messages_per_s", ge, 1.3, "≥ 1.3", True),
    Target("W3", "delivered / expected", "delivered_ratio", eq, 1.0, "100 %"),
    Target("W3", "fan-out p99 (ms)", "fanout_p99_ms", le, 35, "≤ 35"),
    Target("W3-2000", "issue 20: delivered / expected", "delivered_ratio", eq, 1.0, "100 %"),
    Target("W3-2000", "issue 20: fan-out p99 (ms)", "fanout_p99_ms", le, 100, "≤ 100"),
    Target("W4", "connections/s", "connections_per_s", ge, 810, "≥ 810"),
    Target("W4", "failures", "failed", eq, 0, "0"),
    Target("W4", "issue 20: × Channels 4.3", C4 + "connections_per_s", ge, 1.5, "≥ 1.5", True),
    Target("W5", "connected of 10,000", "connected", eq, 10000, "10,000"),
    Target("W5", "closed while held", "closed_while_held", eq, 0, "0"),
    Target("W5", "daphne RSS with them held (MB)", "daphne_rss_mb", le, 250, "≤ 250"),
    Target("W5", "W2 echo beside them / alone", "echo_beside_ratio", ge, 0.9, "≥ 0.9"),
    Target("W5-100k", "issue 20: connected of 100,000", "connected", eq, 100000, "100,000"),
    Target("W5-100k", "closed while held", "closed_while_held", eq, 0, "0"),
    Target("W5-100k", "issue 20: daphne KB per socket", "per_socket_kb", le, 12, "≤ 12"),
    Target(
        "W5-100k", "issue 20: daphne idle CPU (cores)", "daphne_idle_cpu_cores", le, 0.2, "< 0.2"
    ),
    Target("W5-100k", "issue 20: echo beside / alone", "echo_beside_ratio", ge, 0.9, "≥ 0.9"),
    Target("W5-deflate", "connected of 10,000", "connected", eq, 10000, "10,000"),
    Target(
        "W5-deflate", "permessage-deflate negotiated", "negotiated_deflate", eq, 10000, "10,000"
    ),
    Target("W5-deflate", "closed while held", "closed_while_held", eq, 0, "0"),
    Target("W5-deflate", "issue 21: daphne RSS held (MB)", "daphne_rss_mb", le, 250, "≤ 250"),
    Target("W6", "first echo after restart (s)", "first_echo_after_restart_s", le, 1, "≤ 1"),
    Target("W6", "half rate after restart (s)", "half_rate_after_restart_s", le, 2, "≤ 2"),
    Target("W6", "WebSockets closed", "closed", eq, 0, "0"),
    Target("W6", "daphne alive", "daphne_alive", eq, True, "yes"),
    Target("W6", "worker alive", "worker_alive", eq, True, "yes"),
    Target("W6", "new client connects and echoes", "new_client_echo", eq, True, "yes"),
    # Issue 17 item 5.
    Target("W8", "WebSockets closed", "closed", eq, 0, "0"),
    Target("W8", "messages lost", "lost", eq, 0, "0"),
    Target("W8", "restarts done under load", "restarts_within_load", eq, True, "yes"),
    Target("W9", "messages lost", "lost", eq, 0, "0"),
    Target("W9", "WebSockets closed", "closed", eq, 0, "0"),
    Target("W9", "dead letters", "dead_lettered_count", eq, 0, "0"),
]


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.judge(result) for t in TARGETS if t.applies(result)]
