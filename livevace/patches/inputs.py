"""What every host patch is made from, read from the one place each fact lives: the live
parameters from the registry, the recallable scenes and the TouchOSC controller mappings
from the presets, the extra OSC commands from the control surface's address table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from livevace.control.addresses import COMMANDS, Command
from livevace.control.mapping import Controller, load_controller
from livevace.control.scenes import scene_names
from livevace.control.service import DEFAULT_OSC_PORT, FEEDBACK_PORT
from livevace.control.tomlfiles import presets_root
from livevace.io.specs import DEFAULT_SENDER_NAME
from livevace.params import REGISTRY, Param

DIALS = ("vace_context_scale", "vace_refinement_scale", "vace_generation_scale", "noise_scale")
"""The parameters a performer turns most: the dials of the Ableton device and the Resolume
dashboard links (the registry holds their ranges)."""

STRATIFICATION = "stratification"
"""Presets folder whose strategies are recalled as scenes `stratification/<name>`."""


@dataclass(frozen=True)
class Inputs:
    params: tuple[Param, ...]
    """Every parameter meant for live control (live and writable), in registry order."""
    scenes: tuple[str, ...]
    """Names `/livevace/scene` recalls: the scenes, then the stratification strategies."""
    touchosc: tuple[Controller, ...]
    """The shipped TouchOSC mappings (presets/controllers/touchosc*.toml)."""
    commands: tuple[Command, ...]
    osc_port: int = DEFAULT_OSC_PORT
    feedback_port: int = FEEDBACK_PORT
    sender: str = DEFAULT_SENDER_NAME
    ndi_machine: str = "YOUR-PC"
    """The machine in the NDI source name 'MACHINE (livevace)' for hosts that cannot find
    it themselves (OBS); `livevace patches build --ndi-machine NAME` sets the real one."""

    def command(self, address: str) -> Command:
        """A control-surface command by address (KeyError when the node has none)."""
        for c in self.commands:
            if c.address == address:
                return c
        raise KeyError(address)


def label(name: str) -> str:
    """A registry name as a host shows it: vace_context_scale → VACE context scale."""
    words = name.replace("_", " ").replace("vace", "VACE")
    return words[:1].upper() + words[1:]


def live_params() -> tuple[Param, ...]:
    return tuple(p for p in REGISTRY if p.live and not p.readonly)


def recallable_scenes(root: Path) -> tuple[str, ...]:
    strategies = sorted(p.stem for p in (root / STRATIFICATION).glob("*.toml"))
    return (*scene_names(root / "scenes"), *(f"{STRATIFICATION}/{s}" for s in strategies))


def gather(root: Path | None = None, ndi_machine: str | None = None) -> Inputs:
    """Read the inputs; a broken TouchOSC mapping stops the build with its file and line."""
    root = root or presets_root()
    touchosc = tuple(load_controller(p)
                     for p in sorted((root / "controllers").glob("touchosc*.toml")))
    inputs = Inputs(live_params(), recallable_scenes(root), touchosc, COMMANDS)
    return replace(inputs, ndi_machine=ndi_machine) if ndi_machine else inputs
