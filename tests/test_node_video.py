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
    source.open()
    try:
        t0 = now()
        frames = []
        while len(frames) < COUNT + 5:
            frame = source.read(timeout=1.0)
            if frame is not None:
                frames.append(frame)
        elapsed = now() - t0
    finally:
        source.close()
    for i, frame in enumerate(frames):
        assert frame.image.shape == (H, W, 3)
        # Frame i of the run is frame i mod 10 of the file: it loops, in order, none lost.
        assert np.abs(frame.image.astype(int) - reference[i % COUNT]).max() <= 1
    # 15 frames at 10 fps take at least 1.4 s (decoded at the file's rate, not as fast as
    # possible); the stamps are spaced accordingly.
    assert elapsed >= 1.3
    gaps = np.diff([f.t_capture for f in frames])
    assert gaps.min() >= 0.05 and np.median(gaps) == pytest.approx(1 / RATE, rel=0.3)


def test_unreadable_video_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot read video|no decodable|no video"):
        VideoSource(str(junk)).open()
    with pytest.raises(SourceError, match="does not exist"):
        VideoSource(str(tmp_path / "missing.mp4")).open()
