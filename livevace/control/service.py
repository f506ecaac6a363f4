"""The control surface as one service: what `livevace run` starts beside the loop.

`add_arguments` declares the command-line options; `start` opens the OSC server(s),
feedback, OSCQuery, controller mappings, scenes and Ableton Link; the node loop calls
`ControlService.tick()` once per pipeline call, right before it snapshots the
parameters, and `close()` on the way out.
"""

from __future__ import annotations

import argparse
import logging
import time

from livevace.control.feedback import Feedback, Stats, parse_target
from livevace.control.ramps import Ramps
from livevace.control.router import Router
from livevace.control.transport import AllowList, TcpServer, UdpServer
from livevace.params import ParamStore

log = logging.getLogger("livevace.osc")

DEFAULT_OSC_PORT = 9000
DEFAULT_OSCQUERY_PORT = 9001


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("control (OSC, OSCQuery, controllers, scenes, tempo)")
    g.add_argument("--osc-port", type=int, default=DEFAULT_OSC_PORT, metavar="PORT",
                   help=f"UDP port for OSC control (default {DEFAULT_OSC_PORT}; 0: any free "
                   "port; -1: no OSC)")
    g.add_argument("--osc-host", default="127.0.0.1", metavar="HOST",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                   "0.0.0.0: the network)")
    g.add_argument("--osc-tcp", action="store_true",
                   help="also accept OSC over TCP on the same port (SLIP or size-prefixed)")
    g.add_argument("--osc-allow", action="append", default=[], metavar="ADDR[,ADDR…]",
                   help="only accept OSC from these IP addresses or networks "
                   "(e.g. 192.168.1.0/24); repeatable")
    g.add_argument("--feedback", action="append", default=[], metavar="HOST:PORT",
                   help="echo every value change and stats to this OSC target; repeatable")
    g.add_argument("--stats-interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often stats go to the feedback targets (default 1; 0: never)")


class ControlService:
    """Everything that steers the live parameters; ticked by the node loop."""

    def __init__(self, store: ParamStore, router: Router, servers: list, feedback: Feedback) -> None:
        self.store = store
        self.router = router
        self.servers = servers
        self.feedback = feedback

    @property
    def osc_address(self) -> tuple[str, int] | None:
        """(host, port) the UDP server listens on (the real port when 0 was asked)."""
        return self.servers[0].address if self.servers else None

    def tick(self) -> None:
        """Advance slews, crossfades and due bundle messages (once per pipeline call)."""
        self.router.run_due()
        self.router.ramps.tick(time.monotonic())

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self.feedback.close()


def start(args: argparse.Namespace, store: ParamStore, stats: Stats | None = None) -> ControlService:
    """Open everything the options ask for; raises UserError (one line) when it cannot."""
    ramps = Ramps(store)
    router = Router(store, ramps)
    allow = AllowList(args.osc_allow)
    servers: list = []
    try:
        if args.osc_port >= 0:
            udp = UdpServer(args.osc_host, args.osc_port, router.handle_packet, allow)
            servers.append(udp)
            if args.osc_tcp:
                servers.append(TcpServer(args.osc_host, udp.address[1], router.handle_packet, allow))
            host, port = udp.address
            log.info("OSC control on %s:%d/udp%s", host, port, " and tcp" if args.osc_tcp else "")
        feedback = Feedback(store, [parse_target(t) for t in args.feedback], stats,
                            args.stats_interval)
    except BaseException:
        for server in servers:
            server.close()
        raise
    return ControlService(store, router, servers, feedback)
