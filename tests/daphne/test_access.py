"""The access log's lines (D-47, D-48): the date is formatted once per second (issue 20)."""

from __future__ import annotations

import datetime
import io

from daphne.access import AccessLogGenerator


def _line(generator: AccessLogGenerator, stream: io.StringIO, date: datetime.datetime) -> str:
    generator.write_entry(host="1.2.3.4:5", date=date, request="GET /", status=200, length=2)
    return stream.getvalue().splitlines()[-1]


def test_each_line_carries_its_own_second():
    stream = io.StringIO()
    generator = AccessLogGenerator(stream)
    base = datetime.datetime(2026, 12, 4, 19, 0, 59, 999_000)
    dates = [
        base,
        base.replace(microsecond=1),  # the same second: the cached stamp
        base + datetime.timedelta(milliseconds=1),  # the next second
        base + datetime.timedelta(minutes=1),  # same second field, the next minute
        base + datetime.timedelta(days=31),  # same time of day, the next month
        base + datetime.timedelta(days=365),  # the next year
        base,  # back again
    ]
    for date in dates:
        stamp = date.strftime("%d/%b/%Y:%H:%M:%S")
        assert _line(generator, stream, date) == f'1.2.3.4:5 - - [{stamp}] "GET /" 200 2'
