"""Zeroconf (Bonjour) advertisement of the OSCQuery server (`_oscjson._tcp`) and the OSC
port (`_osc._udp`, which TouchOSC browses).

Discovery follows `--osc-host`. On a loopback address (the default) nothing is advertised
and no mDNS socket is opened: python-zeroconf's multicast listener is always bound to
0.0.0.0:5353 whatever interfaces it is given, so "loopback-only" advertising would still
open a socket to the network, for a service that only this machine can reach, and local
apps can be given 127.0.0.1 directly. On a network address, mDNS runs on that interface;
on 0.0.0.0, on every interface.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from typing import Any

log = logging.getLogger("livevace.osc")


def is_loopback(host: str) -> bool:
    """Whether a bound address reaches only this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Advertiser:
    """Registers the services on a thread of its own: mDNS probing takes seconds, and the
    show must not wait for it."""

    def __init__(self, name: str, host: str, http_port: int, osc_port: int) -> None:
        self._zeroconf: Any = None
        self._thread = threading.Thread(target=self._advertise, name="oscquery-mdns",
                                        args=(name, host, http_port, osc_port), daemon=True)
        self._thread.start()

    def _advertise(self, name: str, host: str, http_port: int, osc_port: int) -> None:
        try:
            from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

            everywhere = host in ("0.0.0.0", "")
            ip = _lan_ip() if everywhere else host
            self._zeroconf = Zeroconf(interfaces=InterfaceChoice.All if everywhere else [ip],
                                      ip_version=IPVersion.V4Only)
            label = f"{name} on {socket.gethostname()}"[:63]
            infos = [
                ServiceInfo("_oscjson._tcp.local.", f"{label}._oscjson._tcp.local.",
                            addresses=[socket.inet_aton(ip)], port=http_port,
                            properties={"txtvers": "1"}),
                ServiceInfo("_osc._udp.local.", f"{label}._osc._udp.local.",
                            addresses=[socket.inet_aton(ip)], port=osc_port),
            ]
            for info in infos:
                self._zeroconf.register_service(info, allow_name_change=True)
            log.info("OSCQuery advertised over Zeroconf as %r (_oscjson._tcp)", label)
        except Exception as exc:  # no multicast on this network: serve without discovery
            log.warning("Zeroconf advertisement unavailable (%s); OSCQuery still answers on "
                        "%s", exc, page_urls(host, http_port))
            self._close_zeroconf()

    def _close_zeroconf(self) -> None:
        if self._zeroconf is not None:
            try:
                self._zeroconf.unregister_all_services()
                self._zeroconf.close()
            except Exception:
                pass
            self._zeroconf = None

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._close_zeroconf()


def page_urls(host: str, port: int) -> str:
    """Where a browser on the network opens the node, on one line: a bound 0.0.0.0 is no
    address anyone can open, so then this machine's LAN addresses, its name and 127.0.0.1."""
    if host not in ("0.0.0.0", ""):
        return f"http://{host}:{port}/"
    hosts = dict.fromkeys([*lan_addresses(), socket.gethostname(), "127.0.0.1"])
    return ", ".join(f"http://{h}:{port}/" for h in hosts)


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses beyond loopback: the one its default route leaves by,
    then the others its name resolves to."""
    found = [_lan_ip()]
    try:
        found += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None,
                                                            socket.AF_INET)]
    except OSError:  # a name the resolver does not know
        pass
    return [a for a in dict.fromkeys(found) if not is_loopback(a)]


def _lan_ip() -> str:
    """The address other machines reach this one at (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
