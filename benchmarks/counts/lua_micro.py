"""Redis's own cost of the send scripts, without daphne or a worker (session 8).

    python benchmarks/counts/lua_micro.py CODE_ROOT [ROUNDS] [--callgrind OUT]

Imports ``asgi_redis.scripts`` from CODE_ROOT (this tree, or ``git archive REF | tar -x
-C DIR``), starts a private redis-server and runs W1's script traffic against it in
pipelines of 100 rounds: per round a one-message ``SEND_MANY`` to the normal channel
``http.request`` and one to a process-specific reply channel (``daphne.response.X!Y``),
each followed by the ``LMPOP`` a receiver would do (the request list keeps one entry, as
in W1, where a send mostly finds it non-empty), then a two-message ``SEND_MANY``
(both kinds) and its pops, then three replies in one ``SEND_MANY`` (a worker's batch) and
their pop. Prints ``INFO commandstats`` per round: calls and
microseconds per command (wall time inside Redis: repeat and take medians). With
``--callgrind OUT`` Redis runs under valgrind and the instructions it executed in the
window are printed per round (deterministic; OUT.cg holds the profile).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis as redis_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from support.redis_harness import free_port  # noqa: E402

PAYLOAD = b"\x85" + b"x" * 349  # about a W1 request's msgpack
EXPIRY_MS = 60_000
REQUEST = "http.request"
REPLY = "daphne.response.AbCdEfGh!"
REPLY_NAME = REPLY + "kLmNoPqR"


def _client(port: int) -> redis_py.Redis:
    return redis_py.Redis(port=port)


def start(callgrind: str | None) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    directory = tempfile.mkdtemp(prefix="lua-micro-")
    argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", directory]
    if callgrind:
        argv = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={callgrind}.cg",
            "--instr-atstart=no",
            *argv,
        ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            _client(port).ping()
            break
        except redis_py.ConnectionError:  # not up yet
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    return process, port, directory


def send_many_args(scripts, messages):
    deadline = b"%013d" % (int(time.time() * 1000) + EXPIRY_MS)
    keys = ["asgi:stats:#global#"]
    args = [EXPIRY_MS, deadline, 3600, 86400]
    for channel, storage in messages:
        keys += [f"asgi:{{{storage}}}", f"asgi:stats:{{{storage}}}"]
        header = b"M" if channel == storage else b"N" + channel.encode() + b"|"
        args += [PAYLOAD, 100, header, ""]
    return scripts.SEND_MANY.packed(keys, args)


def main() -> None:
    code_root = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 2000
    callgrind = sys.argv[sys.argv.index("--callgrind") + 1] if "--callgrind" in sys.argv else None
    sys.path.insert(0, code_root)
    from asgi_redis import scripts
    from asgi_redis.wire import pack_command

    process, port, _ = start(callgrind)
    try:
        client = _client(port)
        client.execute_command("SCRIPT", "LOAD", scripts.SEND_MANY.source)
        # The request list keeps one entry (W1's worker rarely empties it: a send finds
        # it non-empty), the reply list is emptied by each pop.
        pops = {
            name: pack_command(("LMPOP", 1, f"asgi:{{{name}}}", "LEFT", "COUNT", count))
            for name, count in ((REQUEST, 1), (REPLY, 10))
        }
        sock_setup = [send_many_args(scripts, [(REQUEST, REQUEST)])]
        one_round = b"".join(
            [
                send_many_args(scripts, [(REQUEST, REQUEST)]),
                pops[REQUEST],
                send_many_args(scripts, [(REPLY_NAME, REPLY)]),
                pops[REPLY],
                send_many_args(scripts, [(REQUEST, REQUEST), (REPLY_NAME, REPLY)]),
                pops[REQUEST],
                pops[REPLY],
                send_many_args(scripts, [(REPLY_NAME, REPLY)] * 3),
                pops[REPLY],
            ]
        )
        replies_per_round = 9
        sock = client.connection_pool.get_connection()
        sock.connect()

        def run(count: int) -> None:
            for start_at in range(0, count, 100):
                n = min(100, count - start_at)
                sock.send_packed_command([one_round * n])
                for _ in range(n * replies_per_round):
                    sock.read_response()

        sock.send_packed_command(sock_setup)
        sock.read_response()
        run(200)  # warm up
        client.config_resetstat()
        if callgrind:
            subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True)
            subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True)
        run(rounds)
        if callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], check=True)
            subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True)
        stats = client.info("commandstats")
        result: dict = {
            "rounds": rounds,
            "calls_per_round": {
                key.removeprefix("cmdstat_"): round(value["calls"] / rounds, 2)
                for key, value in sorted(stats.items())
                if key not in ("cmdstat_config", "cmdstat_info")
            },
            "usec_per_round": {
                key.removeprefix("cmdstat_"): round(value["usec"] / rounds, 2)
                for key, value in sorted(stats.items())
                if key not in ("cmdstat_config", "cmdstat_info")
            },
        }
        if callgrind:
            dumps = sorted(Path(callgrind + ".cg").parent.glob(Path(callgrind).name + ".cg*"))
            total = 0
            for dump in dumps:
                with open(dump) as lines:
                    for row in lines:
                        if row.startswith("summary:") or row.startswith("totals:"):
                            total = max(total, int(row.split()[1]))
            result["instructions_per_round"] = round(total / rounds)
        print(json.dumps(result))
    finally:
        process.terminate()
        process.wait(30)
        if process.returncode not in (0, -15):
            print(f"redis-server exited {process.returncode}", file=sys.stderr)


if __name__ == "__main__":
    main()
