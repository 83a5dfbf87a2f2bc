"""Command line and reporting shared by the three clients."""

from __future__ import annotations

import argparse
import json
from collections import Counter


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", type=int, default=20, help="requests to send (20)")
    parser.add_argument("--n", type=int, default=200_000, help="count primes below n (200000)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight (async clients; 8)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each answer (30)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary line")
    args = parser.parse_args()
    if args.count < 1 or args.concurrency < 1 or args.timeout <= 0:
        parser.error("--count, --concurrency and --timeout must be positive")
    return args


def report(args: argparse.Namespace, answers: list[dict | None]) -> int:
    """Print the answers; the exit status is 1 when any request went unanswered."""
    missing = [i for i, a in enumerate(answers) if a is None]
    served = Counter(a.get("served_by", "?") for a in answers if a is not None)
    if args.json:
        print(json.dumps({"answers": answers, "missing": missing, "served_by": served}))
    else:
        for request_id, a in enumerate(answers):
            print(f"request {request_id}: {a if a is not None else 'no answer (timed out)'}")
        for name, count in served.most_common():
            print(f"{name} answered {count}")
    return 1 if missing else 0
