"""Sources and sinks, one module per backend, built from the specs a VJ types.

    make_source(spec, width, height, fps, extra_ips) -> Source   (not opened yet)
    make_sink(spec) -> Sink                                      (not opened yet)

Backends that need optional packages (NDI, PyAV, Spout, Syphon, pyvirtualcam) are imported
only when their spec is used, so a missing one is a one-line error for that spec alone.
"""

from __future__ import annotations

from livevace.frames import Sink, Source
from livevace.io.ndi import DEFAULT_EXTRA_IPS
from livevace.io.specs import SinkSpec, SourceSpec, parse_sink, parse_source


def make_source(spec: SourceSpec, width: int, height: int, fps: float,
                extra_ips: tuple[str, ...] = DEFAULT_EXTRA_IPS) -> Source:
    if spec.kind == "pattern":
        from livevace.io.pattern import PatternSource

        return PatternSource(width, height, fps)
    if spec.kind == "camera":
        from livevace.io.camera import CameraSource

        return CameraSource(int(spec.arg), width, height, fps)
    if spec.kind == "video":
        from livevace.io.video import VideoSource

        return VideoSource(spec.arg)
    if spec.kind == "ndi":
        from livevace.io.ndi_in import NdiSource

        return NdiSource(spec.arg, address=spec.is_address, extra_ips=extra_ips)
    if spec.kind == "spout":
        from livevace.io.spout import SpoutSource

        return SpoutSource(spec.arg)
    raise AssertionError(spec)


def make_sink(spec: SinkSpec) -> Sink:
    if spec.kind == "ndi":
        from livevace.io.ndi_out import NdiSink

        return NdiSink(spec.arg)
    if spec.kind == "record":
        from livevace.io.record import RecordSink

        return RecordSink(spec.arg)
    if spec.kind == "preview":
        from livevace.io.preview import PreviewSink

        return PreviewSink()
    if spec.kind == "spout":
        from livevace.io.spout import SpoutSink

        return SpoutSink(spec.arg)
    if spec.kind == "syphon":
        from livevace.io.syphon import SyphonSink

        return SyphonSink(spec.arg)
    if spec.kind == "vcam":
        from livevace.io.vcam import VcamSink

        return VcamSink()
    raise AssertionError(spec)


__all__ = ["SinkSpec", "SourceSpec", "make_sink", "make_source", "parse_sink", "parse_source"]
