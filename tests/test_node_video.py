"""Video file source on a clip made by ffmpeg inside the test."""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest

from livevace.errors import SourceError
from livevace.frames import now
from livevace.io.video import VideoSource

W, H, RATE, COUNT = 160, 96, 10, 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate={RATE}", "-frames:v", str(COUNT),
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return str(path)


def test_video_plays_at_its_own_rate_and_loops(clip):
    with av.open(clip) as container:
        reference = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(reference) == COUNT
    source = VideoSource(clip)
    t0 = now()
    source.open()
    try:
        frames = []
        while len(frames) < COUNT + 5:
            frame = source.read(timeout=1.0)
            if frame is not None:
                frames.append(frame)
    finally:
        source.close()
    for i, frame in enumerate(frames):
        assert frame.image.shape == (H, W, 3)
        # Frame i of the run is frame i mod 10 of the file: it loops, in order, none lost.
        assert np.abs(frame.image.astype(int) - reference[i % COUNT]).max() <= 1
        # Played at the file's rate, not as fast as it decodes: frame i is never out before
        # i periods have passed (a busy machine only makes it later).
        assert frame.t_capture - t0 >= i / RATE - 1e-6, i


def test_unreadable_video_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot read video|no decodable|no video"):
        VideoSource(str(junk)).open()
    with pytest.raises(SourceError, match="does not exist"):
        VideoSource(str(tmp_path / "missing.mp4")).open()
