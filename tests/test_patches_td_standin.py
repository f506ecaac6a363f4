"""A stand-in for the slice of TouchDesigner's Python API the generated build script uses
(no tests here). TouchDesigner itself cannot run on the test machines; this lets the
generated script execute exactly as the Textport would run it, and lets its OSC Out / OSC
In DATs talk real UDP to a real livevace node. It models only documented behaviour:
custom parameter pages and their attributes, expressions, Parameter Execute callbacks on
value change and pulse, `sendOSC`, OSC In callbacks, Text DAT modules, table rows. Unknown
operator parameters raise AttributeError, as `par.<name>` does in TouchDesigner.
"""

from __future__ import annotations

import re
import socket
import types
from typing import Any

from pythonosc.osc_packet import OscPacket

from livevace.control.router import encode


class ParMode:
    CONSTANT = "constant"
    EXPRESSION = "expression"


class Par:
    def __init__(self, owner: "Node", name: str, value: Any = None) -> None:
        self.owner, self.name, self._val = owner, name, value
        self.expr, self.mode = "", ParMode.CONSTANT
        self.menuNames: list[str] = []
        self.menuLabels: list[str] = []
        self.min = self.max = self.normMin = self.normMax = None
        self.clampMin = self.clampMax = False
        self.default: Any = None
        self.help = ""
        self.style = ""

    @property
    def val(self) -> Any:
        return self._val

    @val.setter
    def val(self, value: Any) -> None:
        if self.style == "Menu" and value not in self.menuNames:
            raise ValueError(f"{self.name}: {value!r} is not a menu item")
        if self.clampMin and value < self.min:
            value = self.min
        if self.clampMax and value > self.max:
            value = self.max
        if self.style == "Int":
            value = int(value)
        prev, self._val = self._val, value
        if prev != value:
            self.owner.par_changed(self, prev)

    def eval(self) -> Any:
        if self.mode == ParMode.EXPRESSION:
            result = eval(self.expr, {"parent": lambda: self.owner.parent})  # noqa: S307
            return result.eval() if isinstance(result, Par) else result
        return self._val

    @property
    def menuIndex(self) -> int:
        return self.menuNames.index(self.eval())

    def pulse(self) -> None:
        self.owner.par_pulsed(self)


class Pars:
    def __init__(self, node: "Node", names: tuple[str, ...]) -> None:
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_pars", {n: Par(node, n) for n in names})

    def add(self, par: Par) -> None:
        self._pars[par.name] = par

    def __getattr__(self, name: str) -> Par:
        try:
            return self._pars[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        getattr(self, name).val = value


class Page:
    def __init__(self, comp: "Node", name: str) -> None:
        self.comp, self.name = comp, name

    def _append(self, style: str, name: str, label: str | None = None) -> list[Par]:
        if not re.fullmatch(r"[A-Z][a-z0-9]*", name):
            raise ValueError(f"{name!r}: custom parameter names are a capital, then a-z 0-9")
        if name in self.comp.par._pars:
            raise ValueError(f"parameter {name} exists")
        par = Par(self.comp, name, {"Float": 0.0, "Int": 0, "Toggle": False, "Str": "",
                                    "Menu": "", "Pulse": None}[style])
        par.style = style
        self.comp.par.add(par)
        return [par]

    def __getattr__(self, attr: str):
        if attr.startswith("append") and attr[6:] in ("Float", "Int", "Toggle", "Str", "Menu",
                                                       "Pulse"):
            return lambda name, label=None: self._append(attr[6:], name, label)
        raise AttributeError(attr)


class Connector:
    def __init__(self) -> None:
        self.source: Node | None = None

    def connect(self, node: "Node") -> None:
        self.source = node


class Node:
    PARS: tuple[str, ...] = ()

    def __init__(self, parent: "Node | None", name: str) -> None:
        self.parent, self.name = parent, name
        self.par = Pars(self, self.PARS)
        self.children: dict[str, Node] = {}
        self.inputConnectors = [Connector(), Connector(), Connector()]
        self.nodeX = self.nodeY = 0
        self._storage: dict[str, Any] = {}
        self.pages: list[Page] = []

    @property
    def path(self) -> str:
        return (self.parent.path.rstrip("/") if self.parent else "") + "/" + self.name

    def create(self, kind: type, name: str) -> "Node":
        node = kind(self, name)
        self.children[name] = node
        return node

    def op(self, name: str) -> "Node | None":
        return self.children.get(name)

    def destroy(self) -> None:
        del self.parent.children[self.name]

    def store(self, key: str, value: Any) -> None:
        self._storage[key] = value

    def fetch(self, key: str) -> Any:
        return self._storage[key]

    def appendCustomPage(self, name: str) -> Page:
        self.pages.append(Page(self, name))
        return self.pages[-1]

    def _parexecs(self) -> list["ParameterExecuteDAT"]:
        return [c for c in self.children.values() if isinstance(c, ParameterExecuteDAT)
                and c.watches(self)]

    def par_changed(self, par: Par, prev: Any) -> None:
        for dat in self._parexecs():
            if dat.par.valuechange.eval():
                dat.module.onValueChange(par, prev)

    def par_pulsed(self, par: Par) -> None:
        for dat in self._parexecs():
            if dat.par.onpulse.eval():
                dat.module.onPulse(par)


class baseCOMP(Node):
    pass


class textDAT(Node):
    text = ""

    @property
    def module(self) -> types.ModuleType:
        """Like TouchDesigner, a DAT's module sees `op` relative to its own network and
        `parent()` as the component it sits in; it is made once per text."""
        if getattr(self, "_module_text", None) != self.text:
            module = types.ModuleType(self.name)
            module.__dict__.update(op=self.parent.op, parent=lambda: self.parent, me=self)
            exec(compile(self.text, self.path, "exec"), module.__dict__)  # noqa: S102
            self._module, self._module_text = module, self.text
        return self._module


class Cell:
    def __init__(self, val: Any) -> None:
        self.val = str(val)


class tableDAT(Node):
    def clear(self) -> None:
        self.rows: list[list[Cell]] = []

    def row(self, key: str) -> list[Cell] | None:
        return next((r for r in self.rows if r[0].val == key), None)

    def appendRow(self, values: list[Any]) -> None:
        self.rows.append([Cell(v) for v in values])


class ParameterExecuteDAT(textDAT):
    PARS = ("op", "pars", "custom", "builtin", "valuechange", "onpulse", "active")

    def watches(self, comp: Node) -> bool:
        target = self.par.op.eval()
        return self.par.active.eval() and self.par.custom.eval() and \
            (target == ".." or target == comp.path) and self.par.pars.eval() == "*"


class oscoutDAT(Node):
    PARS = ("address", "port", "active")

    def sendOSC(self, address: str, args: list[Any]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(encode(address, list(args)),
                        (self.par.address.eval(), int(self.par.port.eval())))


class oscinDAT(Node):
    PARS = ("port", "callbacks", "active")
    _sock: socket.socket | None = None

    def poll(self, timeout: float = 0.3) -> int:
        """Deliver the messages that arrived (TouchDesigner does this every frame)."""
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind(("127.0.0.1", int(self.par.port.eval())))
        callbacks = self.parent.op(self.par.callbacks.eval()).module
        self._sock.settimeout(timeout)
        delivered = 0
        while True:
            try:
                data, peer = self._sock.recvfrom(65536)
            except socket.timeout:
                return delivered
            self._sock.settimeout(0.05)
            for timed in OscPacket(data).messages:
                m = timed.message
                callbacks.onReceiveOSC(self, delivered, f"{m.address} {m.params}", data,
                                       timed.time, m.address, tuple(m.params), peer)
                delivered += 1

    def close(self) -> None:
        if self._sock:
            self._sock.close()


class ndiinTOP(Node):
    PARS = ("name",)


class syphonspoutinTOP(Node):
    PARS = ("sendername",)


class switchTOP(Node):
    PARS = ("index",)


class outTOP(Node):
    pass


def td_module() -> tuple[types.ModuleType, Node]:
    """A fresh `td` module and its /project1."""
    root = baseCOMP(None, "project1")
    td = types.ModuleType("td")
    td.__dict__.update(
        op=lambda path: root if path == "/project1" else None, ParMode=ParMode,
        baseCOMP=baseCOMP, textDAT=textDAT, tableDAT=tableDAT, oscoutDAT=oscoutDAT,
        oscinDAT=oscinDAT, parameterexecuteDAT=ParameterExecuteDAT, ndiinTOP=ndiinTOP,
        syphonspoutinTOP=syphonspoutinTOP, switchTOP=switchTOP, outTOP=outTOP)
    return td, root
