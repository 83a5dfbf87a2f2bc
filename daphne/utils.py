"""Header helpers and the trusted-proxy rules for forwarded headers (D-49, D-50, D-66)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from twisted.web.http_headers import Headers

__all__ = ["header_value", "parse_x_forwarded_for", "parse_allowed_ips", "InvalidAllowedIP"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidAllowedIP(ValueError):
    """An entry of ``--forwarded-allow-ips`` is neither an IP address nor a network."""


def header_value(headers: dict, header_name: Any) -> str:
    """``headers[name]``: first element of a list, bytes decoded as UTF-8 (D-49)."""
    value = headers[header_name]
    if isinstance(value, list):
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


def transport_addresses(transport: Any) -> tuple[list | None, list | None]:
    """``([peer host, port], [host host, port])``, or ``(None, None)`` for UNIX sockets (D-27)."""
    peer = transport.getPeer()
    host = transport.getHost()
    if hasattr(peer, "host") and hasattr(peer, "port") and hasattr(host, "host"):
        return [str(peer.host), peer.port], [str(host.host), host.port]
    return None, None


def _lower_bytes(name: Any) -> bytes:
    if isinstance(name, str):
        name = name.encode("latin-1")
    return name.lower()


def _normalise(headers: Headers | dict) -> dict[bytes, Any]:
    """Map lower-cased bytes names to values for either a Twisted Headers or a dict (D-50)."""
    if isinstance(headers, Headers):
        return {name.lower(): values for name, values in headers.getAllRawHeaders()}
    return {_lower_bytes(name): value for name, value in headers.items()}


def parse_allowed_ips(value: str | Iterable[str]) -> list[IPNetwork] | None:
    """Parse ``--forwarded-allow-ips`` (D-66): None for ``*``, else a list of networks.

    Raises `InvalidAllowedIP` naming the entry that is not an address or CIDR network.
    """
    entries = value.split(",") if isinstance(value, str) else list(value)
    entries = [entry.strip() for entry in entries if entry.strip()]
    if "*" in entries:
        return None
    if not entries:
        raise InvalidAllowedIP("--forwarded-allow-ips needs at least one address or network")
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise InvalidAllowedIP(
                f"--forwarded-allow-ips entry {entry!r} is not an IP address or CIDR network"
            )
    return networks


def _as_network_list(allowed: Iterable[Any]) -> list[IPNetwork]:
    networks = []
    for entry in allowed:
        if isinstance(entry, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            networks.append(entry)
        else:
            networks.extend(parse_allowed_ips([str(entry)]) or [])
    return networks


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(str(value).strip().strip("[]"))
    except ValueError:
        return None
    # D-66: IPv4-mapped IPv6 peers match their IPv4 form.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(value: Any, networks: list[IPNetwork]) -> bool:
    address = _ip(value)
    return address is not None and any(address in network for network in networks)


def parse_x_forwarded_for(
    headers: Headers | dict,
    address_header_name: str | bytes | None = "X-Forwarded-For",
    port_header_name: str | bytes | None = "X-Forwarded-Port",
    proto_header_name: str | bytes | None = "X-Forwarded-Proto",
    original_addr: list | None = None,
    original_scheme: str | None = None,
    forwarded_allow_ips: Iterable[Any] | None = None,
) -> tuple[list | None, str | None]:
    """Return ``(client address, scheme)`` from forwarded headers (D-50, D-66)."""
    if not address_header_name:
        return original_addr, original_scheme
    headers = _normalise(headers)
    address_key = _lower_bytes(address_header_name)
    if address_key not in headers:
        # D-50: without the address header the port and proto headers are ignored.
        return original_addr, original_scheme

    networks = None
    if forwarded_allow_ips is not None:
        networks = _as_network_list(forwarded_allow_ips)
        # D-66: a peer without an address (UNIX socket, adopted fd) is local, so trusted.
        if original_addr and not _trusted(original_addr[0], networks):
            return original_addr, original_scheme

    entries = [entry.strip() for entry in header_value(headers, address_key).split(",")]
    if networks is None:
        address = entries[0]
    else:
        # D-66: the right-most entry not itself a trusted proxy is what the outermost
        # trusted proxy saw; all trusted → the left-most.
        untrusted = [entry for entry in entries if not _trusted(entry, networks)]
        address = untrusted[-1] if untrusted else entries[0]
    result_addr = [address, 0]

    if port_header_name:
        port_key = _lower_bytes(port_header_name)
        if port_key in headers:
            port_value = header_value(headers, port_key)
            try:
                result_addr[1] = int(port_value)
            except ValueError:
                pass  # D-50: a non-integer port header is ignored
    scheme = original_scheme
    if proto_header_name:
        proto_key = _lower_bytes(proto_header_name)
        if proto_key in headers:
            scheme = header_value(headers, proto_key)
    return result_addr, scheme


class FullChannelReporter:
    """Logs messages dropped or refused for a full channel at WARNING (A-89), merged to one
    line per channel at most every `interval` seconds with the count.

    An unconsumed channel (nobody routes ``http.disconnect``, say) stays full, and one
    line per request would cost more than the request itself.
    """

    interval = 10.0
    # Seconds a channel found full is not tried again by `send_best_effort`.
    probe_interval = 0.1

    def __init__(self, logger: Any, clock: Any = None) -> None:
        import time

        self.logger = logger
        self.clock = clock or time.monotonic
        # channel -> [time of last line, drops since]
        self._state: dict[str, list] = {}
        # channel -> when a send last raised ChannelFull
        self._found_full: dict[str, float] = {}

    def found_full(self, channel: str) -> None:
        self._found_full[channel] = self.clock()

    def recently_full(self, channel: str) -> bool:
        found = self._found_full.get(channel)
        return found is not None and self.clock() - found < self.probe_interval

    def full(self, channel: str, what: str) -> None:
        now = self.clock()
        state = self._state.get(channel)
        if state is None:
            state = self._state[channel] = [now - self.interval, 0]
        state[1] += 1
        if now - state[0] < self.interval:
            return
        count, state[0], state[1] = state[1], now, 0
        self.logger.warning(
            "%s is full: %s (%d time%s since the last report)",
            channel,
            what,
            count,
            "" if count == 1 else "s",
        )

    def failed(self, channel: str, what: str, error: BaseException) -> None:
        """The layer raised something else (its backend is down): same merging, ERROR."""
        now = self.clock()
        key = "error:" + channel
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [now - self.interval, 0]
        state[1] += 1
        if now - state[0] < self.interval:
            return
        count, state[0], state[1] = state[1], now, 0
        self.logger.error(
            "Cannot send to %s: %s: %s (%d time%s since the last report)",
            channel,
            what,
            error,
            count,
            "" if count == 1 else "s",
        )


def send_best_effort(
    layer: Any, channel: str, message: dict, what: str, reporter: FullChannelReporter
) -> bool:
    """Send a message the protocol may drop (disconnects, A-89); True if it was stored.

    A full channel is reported (merged); a layer that cannot reach its backend (Redis
    down, L-62) is logged with the error, so connection teardown never fails on it.

    A channel found full is not tried again for `reporter.probe_interval` seconds: such
    a message would only be dropped, and on a networked layer each try is a blocking
    round trip on the reactor thread (an ``http.disconnect`` nobody consumes stays full
    for good). Skipped messages are counted in the warning, not by the layer.
    """
    if reporter.recently_full(channel):
        reporter.full(channel, what)
        return False
    try:
        layer.send(channel, message)
        return True
    except layer.ChannelFull:
        reporter.found_full(channel)
        reporter.full(channel, what)
    except Exception as error:  # the layer's backend errors have no common base class
        reporter.failed(channel, what, error)
    return False
