"""The test harness's redis-server (support/redis_harness.py): a first start on a port
taken since it was chosen moves to a fresh one; a restart keeps its port."""

from __future__ import annotations

import socket

import pytest

from support.redis_harness import RedisServer, redis_server_path

pytestmark = pytest.mark.skipif(redis_server_path() is None, reason="redis-server is not installed")


def test_a_port_taken_before_the_first_start_is_replaced():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RedisServer(port=port)
        try:
            server.start()
            assert server.port != port
            assert server.ping()
        finally:
            server.stop()


def test_a_cluster_bus_port_taken_before_the_first_start_is_replaced():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bus = taken.getsockname()[1]
        server = RedisServer(extra_args=["--cluster-enabled", "yes", "--cluster-port", str(bus)])
        try:
            server.start()
            assert server.extra_args[server.extra_args.index("--cluster-port") + 1] != str(bus)
            assert server.ping()
        finally:
            server.stop()


def test_a_restart_keeps_its_port_even_when_it_is_taken():
    server = RedisServer().start()
    port = server.port
    server.stop()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", port))
            taken.listen()
            with pytest.raises(RuntimeError, match="exited"):
                server.start()
        assert server.port == port
    finally:
        server.stop()
