"""A source the VJ typed that cannot work is one line on stderr saying what it is and what
is expected: a folder or a device given as a video, a camera index OpenCV cannot take. The
node is started for real (`livevace run`); fd 2 is read, so OpenCV's own lines would show."""

from __future__ import annotations

import pytest

from livevace.cli import main

QUIET = ["--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf", "--no-preview",
         "--pipeline", "passthrough", "--max-frames", "1"]


def run_source(spec: str, capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["run", *QUIET, "--source", spec])
    return code, capfd.readouterr().err.strip().splitlines()


def test_a_folder_given_as_a_video_says_it_is_a_folder(tmp_path, capfd):
    code, err = run_source(f"video:{tmp_path}", capfd)
    assert code != 0 and err == [f"livevace: video '{tmp_path}' is a folder: give a video file "
                                 f"in it, e.g. video:{tmp_path / 'clip.mp4'}"]


def test_a_device_given_as_a_video_is_not_a_video_file(capfd):
    code, err = run_source("video:/dev/zero", capfd)
    assert code != 0 and err == ["livevace: cannot read video '/dev/zero': it is a device or "
                                 "other special file, not a video file (give a file such as "
                                 "clip.mp4)"]


def test_a_file_that_is_no_video_says_ffmpeg_cannot_decode_it(tmp_path, capfd):
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video\n" * 50)
    code, err = run_source(f"video:{junk}", capfd)
    assert code != 0 and err == [f"livevace: cannot read video '{junk}': it is not a video "
                                 "file FFmpeg can decode"]


@pytest.mark.parametrize("index", ["99999999999999999999", "100", "207"])
def test_a_camera_index_opencv_cannot_take_is_one_line(index, capfd):
    """From 100 on OpenCV reads an index as a backend selector (207: V4L2's camera 7), and
    past a C int it raised cv2.error out of the node."""
    code, err = run_source(f"camera:{index}", capfd)
    assert code == 2 and err == [f"livevace: --source 'camera:{index}': the camera index must "
                                 "be a number 0..99, e.g. camera:0 (`livevace sources` lists "
                                 "the cameras)"]


def test_a_missing_camera_is_our_line_only(capfd):
    """OpenCV's own warning and Orbbec-backend error for the index stay quiet."""
    code, err = run_source("camera:99", capfd)
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith("livevace: camera 99 is not available; ")
