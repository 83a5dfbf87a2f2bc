"""Header helpers and the trusted-proxy rules for forwarded headers (D-49, D-50, D-66)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from twisted.web.http_headers import Headers

__all__ = [
    "header_value",
    "parse_x_forwarded_for",
    "parse_allowed_ips",
    "InvalidAllowedIP",
    "UndecodableHeader",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidAllowedIP(ValueError):
    """An entry of ``--forwarded-allow-ips`` is neither an IP address nor a network."""


class UndecodableHeader(ValueError):
    """A forwarded header daphne must read is not UTF-8; the request gets 400 (issue 15)."""


def header_value(headers: dict[Any, Any], header_name: Any) -> str:
    """``headers[name]``: first element of a list, bytes decoded as UTF-8 (D-49)."""
    value = headers[header_name]
    if isinstance(value, list):
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    text: str = value
    return text


def transport_addresses(transport: Any) -> tuple[list[Any] | None, list[Any] | None]:
    """``([peer host, port], [host host, port])``, or ``(None, None)`` for UNIX sockets (D-27)."""
    peer = transport.getPeer()
    host = transport.getHost()
    if hasattr(peer, "host") and hasattr(peer, "port") and hasattr(host, "host"):
        return [str(peer.host), peer.port], [str(host.host), host.port]
    return None, None


def _text(value: str | bytes, name: str | bytes) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            raise UndecodableHeader(f"the {name} header is not UTF-8")
    return value


def _all_entries(value: Any, name: str | bytes) -> list[str]:
    """Every comma-separated entry of every line of a header, in order (RFC 9110 §5.3:
    several lines mean the same as one line joined with commas)."""
    lines = value if isinstance(value, list) else [value]
    entries = (entry.strip() for line in lines for entry in _text(line, name).split(","))
    return [entry for entry in entries if entry]  # "a,,b" and a trailing comma add nothing


def _lower_bytes(name: str | bytes) -> bytes:
    if isinstance(name, str):
        name = name.encode("latin-1")
    return name.lower()


def _normalise(headers: Headers | dict[Any, Any]) -> dict[bytes, Any]:
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
    headers: Headers | dict[Any, Any],
    address_header_name: str | bytes | None = "X-Forwarded-For",
    port_header_name: str | bytes | None = "X-Forwarded-Port",
    proto_header_name: str | bytes | None = "X-Forwarded-Proto",
    original_addr: list[Any] | None = None,
    original_scheme: str | None = None,
    forwarded_allow_ips: Iterable[Any] | None = None,
) -> tuple[list[Any] | None, str | None]:
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

    if networks is None:
        # D-50, 1.4: the left-most entry of the first line (every peer trusted; only safe
        # when the proxy alone can reach daphne, and the proxy overwrites the header).
        address = _text(_first(headers[address_key]), address_header_name).split(",")[0].strip()
        port_value = _first_of(headers, port_header_name)
        proto_value = _first_of(headers, proto_header_name)
    else:
        # D-66, issue 15: the right-most entry across all lines that is not itself a
        # trusted proxy is what the outermost trusted proxy saw (a proxy such as
        # HAProxy adds its own line after the client's); all trusted → the left-most.
        entries = _all_entries(headers[address_key], address_header_name)
        if not entries:
            return original_addr, original_scheme  # an empty header names nobody
        hop = len(entries) - 1
        while hop > 0 and _trusted(entries[hop], networks):
            hop -= 1
        address = entries[hop]
        port_value = _hop_value(headers, port_header_name, hop, len(entries))
        proto_value = _hop_value(headers, proto_header_name, hop, len(entries))
    result_addr = [address, 0]
    if port_value is not None:
        try:
            result_addr[1] = int(port_value)
        except ValueError:
            pass  # D-50: a non-integer port header is ignored
    scheme = original_scheme if proto_value is None else proto_value
    return result_addr, scheme


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _first_of(headers: dict[bytes, Any], name: str | bytes | None) -> str | None:
    if not name:
        return None
    key = _lower_bytes(name)
    if key not in headers:
        return None
    return _text(_first(headers[key]), name)


def _hop_value(headers: dict[bytes, Any], name: str | bytes | None, hop: int, hops: int) -> Any:
    """The X-Forwarded-Port/-Proto entry of the chosen X-Forwarded-For hop (issue 15).

    When the header lists one entry per X-Forwarded-For entry (every proxy appended
    one), the entry at the same position; otherwise the right-most entry, the one set by
    the proxy nearest daphne, which is trusted (a client's forgery comes before it).
    """
    if not name:
        return None
    key = _lower_bytes(name)
    if key not in headers:
        return None
    entries = _all_entries(headers[key], name)
    return entries[hop] if len(entries) == hops else entries[-1]
