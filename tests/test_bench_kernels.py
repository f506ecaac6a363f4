"""`bench.kernels`: kernel names sorted into kinds, a trace summed per stream and kind with
overlapping streams counted once in the busy time, and real profiles (CPU; two CUDA streams on
a GPU) written and summarised."""

from __future__ import annotations

import gzip
import json

import pytest
import torch
import torch.nn.functional as F

from livevace.bench.kernels import (TOP, kernel_kind, profile_calls, summarise, try_profile,
                                   union_ms)


@pytest.mark.parametrize("name,kind", [
    # names as the H100/H200 profiles print them (bench/NOTES_pipeline_speed.md parts 7, 8)
    ("kernel_cutlass_kernel_flash_attncuteflash_fwd_sm90FlashAttentionForwardSm90_object_at_",
     "attention"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128", "attention"),
    ("fmha_cutlassF_bf16_aligned_32x128_gmem_sm80(PyTorchMemEffAttention::AttentionKernel",
     "attention"),
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize256x64x32_"
     "warpgroupsize1x1x1_g1_execute_segment_k_off_kernel__5x_cudnn", "conv"),
    ("nvjet_sm90_tst_192x144_64x5_2x1_v_bz_coopB_bias_TNT", "gemm"),
    ("triton_poi_fused_convolution_13", "triton"),
    ("triton_red_fused__to_copy_add_mul_native_layer_norm_unbind_unsqueeze_view_0", "triton"),
    ("void at::native::index_elementwise_kernel<128, 4, at::native::index_copy_kernel_impl",
     "copy/index"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>",
     "elementwise/other"),
])
def test_kernel_kinds(name, kind):
    assert kernel_kind(name) == kind


def test_union_counts_overlaps_once():
    assert union_ms([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17
    assert union_ms([]) == 0


def kernel(name: str, stream: int, ts: float, dur: float, cat: str = "kernel") -> dict:
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur,
            "args": {"stream": stream}}


def test_a_trace_is_summed_per_call_stream_and_kind():
    gemm, conv = "nvjet_sm90_gemm", "sm90_xmma_fprop_implicit_gemm_cudnn"
    events = [
        kernel(gemm, 7, 0, 3000), kernel(gemm, 7, 3000, 3000),          # call 1, stream 7
        kernel(conv, 20, 1000, 4000),                                    # beside it
        kernel("Memcpy DtoH", 7, 6000, 1000, cat="gpu_memcpy"),
        kernel(gemm, 7, 10000, 6000), kernel(conv, 20, 16000, 2000),     # call 2
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 9e9},  # host: ignored
    ]
    prof = summarise(events, calls=2, wall_ms=20.0)
    assert prof.wall_ms == 10.0
    assert prof.streams == {"7": {"copy/index": 0.5, "gemm": 6.0}, "20": {"conv": 3.0}}
    assert prof.kernels_ms == 9.5
    assert prof.busy_ms == pytest.approx((7000 + 8000) / 2e3)  # 0–7 ms and 10–18 ms
    assert prof.idle_ms == pytest.approx(10.0 - 7.5)
    assert prof.by_kind() == {"conv": 3.0, "copy/index": 0.5, "gemm": 6.0}
    assert [(n, k) for n, k, *_ in prof.top] == [(gemm, "gemm"), (conv, "conv"),
                                                  ("Memcpy DtoH", "copy/index")]
    assert prof.top[0][2:] == (6.0, 1.5) and prof.launches == 3
    record = json.loads(json.dumps(prof.as_dict()))
    assert record["idle_ms"] == pytest.approx(2.5) and record["streams_ms"]["20"] == {"conv": 3.0}
    text = "\n".join(prof.lines("two streams"))
    assert "GPU busy 7.50" in text and "idle 2.50" in text and conv in text


def test_kernels_past_the_top_are_one_line_that_keeps_their_time():
    events = [kernel(f"k{i}", 7, i * 10.0, float(i + 1)) for i in range(TOP + 5)]
    prof = summarise(events, calls=1, wall_ms=1.0)
    assert len(prof.top) == TOP + 1 and prof.top[-1][0] == "(other kernels)"
    assert prof.top[-1][2] == pytest.approx(sum(range(1, 6)) / 1e3)
    assert sum(ms for _, _, ms, _ in prof.top) == pytest.approx(prof.kernels_ms)
    assert prof.launches == TOP + 5


def test_a_cpu_profile_writes_its_trace(tmp_path):
    a = torch.randn(64, 64)
    trace = tmp_path / "t.json.gz"
    prof = profile_calls(lambda: a @ a, 3, torch.device("cpu"), trace)
    assert prof.calls == 3 and prof.wall_ms > 0
    assert prof.streams == {} and prof.busy_ms == 0  # host operators only: nothing summed
    events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    assert sum(e.get("name") == "aten::mm" for e in events) == 3
    assert "no device activity" in "\n".join(prof.lines("cpu"))


def test_a_failed_profile_is_one_line_and_no_numbers(capsys):
    def broken() -> None:
        raise RuntimeError("CUPTI unavailable")

    assert try_profile(broken, 2, torch.device("cpu"), "row") is None
    assert capsys.readouterr().out == "row: profiling failed: RuntimeError: CUPTI unavailable\n"


@pytest.mark.gpu
def test_two_cuda_streams_are_told_apart_and_overlap_once():
    dev = torch.device("cuda")
    a = torch.randn(2048, 2048, device=dev, dtype=torch.bfloat16)
    x = torch.randn(8, 64, 128, 128, device=dev, dtype=torch.bfloat16)
    w = torch.randn(64, 64, 3, 3, device=dev, dtype=torch.bfloat16)
    side = torch.cuda.Stream()

    def both() -> None:
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(4):
                F.conv2d(x, w, padding=1)
        for _ in range(4):
            a @ a
        torch.cuda.current_stream().wait_stream(side)

    prof = profile_calls(both, 3, dev)
    assert len(prof.streams) == 2
    kinds = {k for by in prof.streams.values() for k in by}
    assert "gemm" in kinds and "conv" in kinds
    assert 0 < prof.busy_ms <= prof.kernels_ms + 1e-4  # up to rounding of absolute timestamps
    assert prof.busy_ms <= prof.wall_ms
