"""The control surface as one service: what `livevace run` starts beside the loop.

`add_arguments` declares the command-line options; `start` opens the OSC server(s),
feedback, OSCQuery (with its LISTEN WebSocket and the browser page), controller mappings,
MIDI controllers, scenes and the tempo source (Ableton Link or MIDI clock); the node loop calls `ControlService.tick()` once per pipeline
call, right before it snapshots the parameters, feeds `preview` every output frame, and
calls `close()` on the way out.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from livevace.control.controllers import Controllers, learn_target
from livevace.control.discovery import page_urls
from livevace.control.feedback import Feedback, Stats, parse_target
from livevace.control.mapping import resolve_controller
from livevace.control.midi import Midi
from livevace.control.midiclock import MidiClock
from livevace.control.oscquery import OscQueryServer
from livevace.control.preview import Preview
from livevace.control.ramps import Ramps
from livevace.control.ratelog import BurstLog
from livevace.control.replies import Replies
from livevace.control.router import Router, encode
from livevace.control.scenes import Scenes
from livevace.control.tempo import Clock, Quantiser
from livevace.control.transport import (TCP_IDLE, AllowList, PacketHandler, ReplyGuard,
                                        TcpServer, UdpServer, reply_policy)
from livevace.control.values import osc_args
from livevace.control.webpage import Page
from livevace.errors import UserError
from livevace.params import REGISTRY, ParamError, ParamStore, param

log = logging.getLogger("livevace.osc")

DEFAULT_OSC_PORT = 9000
DEFAULT_OSCQUERY_PORT = 9001
FEEDBACK_PORT = 9001
"""UDP port the examples send feedback to (`--feedback HOST:9001`): where `livevace osc
monitor` and the host patches listen (UDP, so beside OSCQuery's TCP port of the same number)."""


def port_number(text: str) -> int:
    """An argparse type: a port, or 0 (any free port) or -1 (off) where an option allows it."""
    try:
        port = int(text)
    except ValueError:
        port = -2
    if not -1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 … 65535)")
    return port


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, above 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("control (OSC, OSCQuery, controllers, scenes, tempo)")
    g.add_argument("--osc-port", type=port_number, default=DEFAULT_OSC_PORT, metavar="PORT",
                   help=f"UDP port for OSC control (default {DEFAULT_OSC_PORT}; 0: any free "
                   "port; -1: no OSC)")
    g.add_argument("--osc-host", default="127.0.0.1", metavar="HOST",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                   "0.0.0.0: every network interface)")
    g.add_argument("--osc-tcp", action="store_true",
                   help="also accept OSC over TCP on the same port (SLIP or size-prefixed)")
    g.add_argument("--osc-tcp-idle", type=seconds, default=TCP_IDLE, metavar="SECONDS",
                   help=f"close a TCP connection silent this long (default {TCP_IDLE:g})")
    g.add_argument("--osc-allow", action="append", default=[], metavar="ADDR[,ADDR…]",
                   help="only accept OSC from these IP addresses or networks "
                   "(e.g. 192.168.1.0/24); repeatable")
    g.add_argument("--feedback", action="append", default=[], metavar="HOST:PORT",
                   help="echo every value change and stats to this OSC target; repeatable")
    g.add_argument("--stats-interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often stats go to the feedback targets (default 1; 0: never)")
    g.add_argument("--oscquery-port", type=port_number, default=DEFAULT_OSCQUERY_PORT, metavar="PORT",
                   help=f"HTTP port of the OSCQuery namespace, its LISTEN WebSocket and the "
                   f"browser control page (default {DEFAULT_OSCQUERY_PORT}; 0: any free port; "
                   "-1: off)")
    g.add_argument("--no-zeroconf", action="store_true",
                   help="do not advertise OSCQuery/OSC over Zeroconf (Bonjour); it is only "
                   "advertised where --osc-host is not a loopback address")
    g.add_argument("--controller", action="append", default=[], metavar="MAPPING",
                   help="controller mapping: a name under presets/controllers (touchosc, "
                   "generic8) or a .toml path; repeatable")
    g.add_argument("--learn-file", type=Path, metavar="PATH",
                   help="where learn mode writes mappings, loaded at start when it exists "
                   "(default: the first --controller file if it is your own, else "
                   "learned.toml in $LIVEVACE_CONTROLLERS_DIR, default "
                   "~/.config/livevace/controllers); never a file in presets/")
    g.add_argument("--midi", action="append", default=[], metavar="NAME",
                   help="a MIDI controller: the port name or a part of it (`livevace midi "
                   "list`); its /midi/… controls follow the --controller mappings, and "
                   "feedback lights its LEDs and moves its motor faders; repeatable")
    g.add_argument("--midi-clock", metavar="NAME",
                   help="follow the MIDI clock of this port (tempo, beat phase, quantize); "
                   "instead of --link")
    g.add_argument("--link", action="store_true",
                   help="join the Ableton Link session (tempo, beat phase, quantize)")
    tempo = param("tempo")
    g.add_argument("--bpm", type=float, default=tempo.default,
                   help=f"tempo when starting a Link session alone (default {tempo.default:g})")


class ControlService:
    """Everything that steers the live parameters; ticked by the node loop."""

    def __init__(self, store: ParamStore, router: Router, controllers: Controllers,
                 quantiser: Quantiser) -> None:
        self.store = store
        self.router = router
        self.controllers = controllers
        self.quantiser = quantiser
        self.servers: list[Any] = []
        self.feedback: Feedback | None = None
        self.midi: Midi | None = None
        """The MIDI ports, with --midi or --midi-clock."""
        self.oscquery: OscQueryServer | None = None
        self.preview = Preview()
        """The browser page's view of the output: the node taps every frame it emits into it."""
        self.info: dict[str, str] = {}
        """What runs (pipeline, model, size…), for the page; the node fills it in."""
        self._closed = False

    @property
    def osc_address(self) -> tuple[str, int] | None:
        """(host, port) the UDP server listens on (the real port when 0 was asked)."""
        return self.servers[0].address if self.servers else None

    def tick(self) -> None:
        """Once per pipeline call, before the parameters are snapshot: apply due bundle
        messages and beat-quantised changes, pick up edited mapping files, advance slews
        and scene crossfades by one step."""
        self.router.run_due()
        self.quantiser.tick()
        self.controllers.tick()
        self.router.ramps.tick(time.monotonic())

    def close(self) -> None:
        """Stop everything; a second call does nothing (start() closes what it opened when
        it fails, and the node closes on the way out whatever happened before)."""
        if self._closed:
            return
        self._closed = True
        for server in self.servers:
            server.close()
        if self.oscquery:
            self.oscquery.close()
        if self.feedback:
            self.feedback.close()
        if self.midi:
            self.midi.close()
        if self.quantiser.clock:
            self.quantiser.clock.close()


def _commands(router: Router, scenes: Scenes, quantiser: Quantiser) -> None:
    """Wire the scene commands and the dump into the router."""
    store = router.store

    def recall(ref: Any) -> None:
        scene = scenes.load(ref)  # errors show now, not on the beat
        quantiser.defer("scene", lambda: scenes.apply(scene))

    def save(address: str, args: list[Any], reply: Replies) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ParamError("/livevace/scene/save: give the scene name as one string")
        scenes.save(args[0])

    def listing(address: str, args: list[Any], reply: Replies) -> None:
        reply(encode("/livevace/scene/list", scenes.names()))

    def dump(address: str, args: list[Any], reply: Replies) -> None:
        values = store.snapshot()
        for p in REGISTRY:
            if p.kind != "trigger":
                reply(encode(p.address, osc_args(p, values[p.name])))

    router.special["scene"] = recall
    router.add("/livevace/scene/save", save)
    router.add("/livevace/scene/list", listing)
    router.add("/livevace/dump", dump)


def only_from(allow: AllowList, handler: PacketHandler) -> PacketHandler:
    """`handler` for the senders `allow` lets in (OSC over the OSCQuery WebSocket obeys
    --osc-allow as OSC over UDP and TCP does)."""
    burst = BurstLog(log)

    def handle(data: bytes, sender: tuple[str, int], reply: Any) -> None:
        if allow(sender[0]):
            handler(data, sender, reply)
        else:
            burst.warning(f"deny {sender[0]}", f"OSC over WebSocket from {sender[0]} ignored "
                          "(not in --osc-allow)")

    return handle


def start(args: argparse.Namespace, store: ParamStore, stats: Stats | None = None) -> ControlService:
    """Open everything the options ask for; raises UserError (one line) when it cannot."""
    controller_paths = [resolve_controller(c) for c in args.controller]
    learn_to = learn_target(controller_paths, args.learn_file)
    ramps = Ramps(store)
    router = Router(store, ramps)
    controllers = Controllers(store, router, controller_paths, learn_to)
    if args.link and args.midi_clock:
        raise UserError("--link and --midi-clock are two tempo sources: choose one")
    midi_clock = MidiClock(args.bpm) if args.midi_clock else None
    quantiser = Quantiser(store, Clock(args.bpm) if args.link else midi_clock)
    if args.link:
        log.info("Ableton Link: %.1f bpm, %d peers", quantiser.clock.tempo, quantiser.clock.peers)
    router.defer = quantiser.defer
    _commands(router, Scenes(store, ramps), quantiser)
    service = ControlService(store, router, controllers, quantiser)
    try:
        if args.osc_port >= 0:
            allow = AllowList(args.osc_allow)
            guard = ReplyGuard(reply_policy(args.osc_host, allow,
                                            (parse_target(t)[0] for t in args.feedback)))
            servers = osc_servers(args, router.handle_packet, allow, guard)
            service.servers.extend(servers)
            host, port = servers[0].address
            log.info("OSC control on %s:%d (udp%s); `livevace osc --list` shows the addresses",
                     host, port, ", tcp" if args.osc_tcp else "")
            log.info("learn mode (/livevace/learn) saves mappings in %s", learn_to)
            if args.oscquery_port >= 0:
                page = Page(store, stats, service.preview, service.info)
                service.oscquery = OscQueryServer(
                    store, args.osc_host, args.oscquery_port, port, advertise=not args.no_zeroconf,
                    packets=only_from(allow, router.handle_packet), page=page)
                log.info("OSCQuery and the control page on %s",
                         page_urls(*service.oscquery.address))
        service.feedback = Feedback(store, [parse_target(t) for t in args.feedback], stats,
                                    args.stats_interval, extra=controllers.feedback)
        if args.midi or args.midi_clock:
            service.midi = Midi(store, router, controllers, args.midi, args.midi_clock,
                                midi_clock)
    except BaseException:
        service.close()
        raise
    return service


ANY_PORT_TRIES = 8
"""Ports tried with `--osc-port 0` and `--osc-tcp` before giving up (see `osc_servers`)."""


def osc_servers(args: argparse.Namespace, handle: PacketHandler, allow: AllowList,
                guard: ReplyGuard, tries: int = ANY_PORT_TRIES) -> list[UdpServer | TcpServer]:
    """OSC over UDP, and over TCP on the same port number with `--osc-tcp`. With `--osc-port 0`
    the system picks a free UDP port, whose number TCP may hold already (a connection's local
    end): then that port is given back and another one tried."""
    udp = UdpServer(args.osc_host, args.osc_port, handle, allow, guard)
    if not args.osc_tcp:
        return [udp]
    try:
        return [udp, TcpServer(args.osc_host, udp.address[1], handle, allow, args.osc_tcp_idle)]
    except UserError:
        udp.close()
        if args.osc_port != 0 or tries <= 1:
            raise
        return osc_servers(args, handle, allow, guard, tries - 1)
