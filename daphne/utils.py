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
