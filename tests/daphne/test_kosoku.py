"""Autobahn WebSocket conformance cases, run by `kosoku` against daphne with an echo worker.

1.*-7.*, 10.* and the permessage-deflate cases 12.* and 13.* must all pass: no FAILED,
no NON-STRICT, no UNIMPLEMENTED case, no exceptions (issue 21). The 9.* cases (limits
and performance) send messages of 1 to 16 MB: past daphne's default 1 MiB limit (D-65)
and, even with ``--websocket-max-message-size 0``, past what an ASGI-1 channel message
may hold (A-92), so daphne closes them with 1009 by design; 9.1.1-9.1.3, 9.2.1-9.2.3
and 9.5-9.8 pass. All 216 compression cases
take over ten minutes on a 2-core machine, so the suite runs one data set of 12.* in all
its sizes and every parameter set of 13.* up to 4 KB messages (13.*.1-9); the whole set
passed at the commit that added this note (`kosoku -i '12.*' -i '13.*'`, 216 passed).

The four cases echoing an *empty* message (1.1.1, 1.2.1, 6.1.1, 6.1.2) pass because an
open socket's reply holding only an empty text/bytes sends an empty frame: a deviation
from A-86, see docs/differences.rst.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.daphne.process import DaphneProcess

CASE_LINE = re.compile(r"^\s+(\d+(?:\.\d+)+): behavior=([A-Z-]+), behaviorClose=([A-Z-]+)")


@pytest.mark.slow
def test_autobahn_cases_pass(tmp_path):
    # The venv's scripts directory need not be on PATH (scripts/test runs .venv/bin/python).
    here = os.path.dirname(sys.executable)
    kosoku = shutil.which("kosoku", path=os.pathsep.join([here, os.environ.get("PATH", "")]))
    if kosoku is None:
        pytest.skip("kosoku is not installed (pip install -e .[tests])")
    # 12.2-12.5 repeat 12.1 with other data; 13.*.10-18 repeat 13.*.1-9 with larger messages.
    skip = ["9.*", "12.2.*", "12.3.*", "12.4.*", "12.5.*"]
    skip += [f"13.{group}.{size}" for group in range(1, 8) for size in range(10, 19)]
    with DaphneProcess("-v", "0", "-p", "0") as daphne:
        result = subprocess.run(
            [
                kosoku,
                *(arg for case in skip for arg in ("-x", case)),
                *("-p", "2", "-o", str(tmp_path / "reports"), f"127.0.0.1:{daphne.port}"),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=tmp_path,
        )
    output = result.stdout + result.stderr
    assert "wrote reports" in output, output[-3000:]
    problems = []
    for line in output.splitlines():
        match = CASE_LINE.match(line)
        if not match:
            if line.startswith("  "):
                problems.append(f"unparsed case line: {line}")  # never skip a failure
            continue
        case, behavior, close = match.groups()
        if behavior != "OK" or close != "OK":
            problems.append(line)
    assert not problems, "\n".join(problems)
