"""Hosts made of Linux network namespaces for multi-host tests (issue 19 item 3).

`Hosts` makes one bridge in the test's own namespace and, per host, a namespace with a
veth pair: one end ``eth0`` in the host with ``10.<net>.0.<n>/24``, the other on the
bridge. The bridge has ``10.<net>.0.254``, so the test process reaches every host.
`cut` takes a host's bridge end down (its processes keep running, unreachable: packets
are dropped, nothing is refused, as when a machine's network fails); `restore` brings it
back. Everything is removed by `close`. Needs root and ``ip``; `available` says whether
``ip netns add`` is permitted here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

__all__ = ["Host", "Hosts", "available"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=20)


def available() -> str | None:
    """`None` when network namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the ip command is missing"
    if os.geteuid() != 0:
        return "not root"
    name = f"c19probe{secrets.token_hex(3)}"
    done = _ip("netns", "add", name, check=False)
    if done.returncode != 0:
        return f"ip netns add is not permitted: {done.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    outside: str  # the veth end on the bridge

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Hosts:
    names: list[str]
    tag: str = field(default_factory=lambda: secrets.token_hex(2))

    def __post_init__(self) -> None:
        self.net = 100 + int(self.tag, 16) % 150
        self.bridge = f"c19b{self.tag}"
        self.hosts: dict[str, Host] = {}

    def start(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"10.{self.net}.0.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for number, name in enumerate(self.names, start=1):
                self._add(number, name)
        except BaseException:
            self.close()
            raise
        return self

    def _add(self, number: int, name: str) -> None:
        namespace = f"c19-{self.tag}-{name}"
        outside, inside = f"c19{self.tag}o{number}", f"c19{self.tag}i{number}"
        address = f"10.{self.net}.0.{number}"
        _ip("netns", "add", namespace)
        self.hosts[name] = Host(name, namespace, address, outside)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        run = ["-n", namespace]
        _ip(*run, "link", "set", inside, "name", "eth0")
        _ip(*run, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip(*run, "link", "set", "eth0", "up")
        _ip(*run, "link", "set", "lo", "up")

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def cut(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].outside, "down")

    def restore(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].outside, "up")

    def close(self) -> None:
        for host in self.hosts.values():
            _ip("link", "del", host.outside, check=False)
            _ip("netns", "del", host.namespace, check=False)
        self.hosts = {}
        _ip("link", "del", self.bridge, check=False)

    def __enter__(self) -> Hosts:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
