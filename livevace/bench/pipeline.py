"""Whole-pipeline speed: the vace pipeline chunk after chunk, its breakdown, FLOP floor and MFU.

`livevace bench pipeline` runs the real `StreamingVace` (annotation a chunk ahead on its
threads, the cache stage, VACE context encode, DiT, decode, the host copies) on a moving test
pattern, called back to back with its input frames in hand — the pipeline's capacity; a live
node is further paced by its camera (`livevace bench probe` measures that, glass to glass).
The model: `--model NAME` (a zoo recipe, default LongLive). Weights: the catalogue's when
present, else random at the model's real shapes (Wan2.1-1.3B + VACE-1.3B for LongLive), with
the Wan VAE and taew2_1 (`--weights random`; speed does not depend on weight values),
random text embeddings in place of UMT5-XXL unless `--text-encoder umt5`, and the depth
control from Depth-Anything-V2-Small at its real config (random weights without the files).
`--weights tiny-random` runs every path on a CPU at toy sizes (tests). Steps and chunk
default to the model's own; `--weights-dtype fp8` stores the DiT's block weights in FP8 (the
14B models on a smaller card). Every row names its model.

Per row, after `--warmup` chunks, `--chunks` timed calls (one chunk each):
- fps = output frames / the calls' wall time; chunk latency p50/p95 = one call's wall time;
- time to first frame (`ttff_s`): a NEW pipeline on the warm model set (weights resident,
  kernels compiled by the row's run), from its creation to its first output frame, input
  frames in hand, its prompt never encoded before. On a GPU (and for a compiled DiT) it
  is first prepared as the node prepares before going live (`StreamingVace.prepare`: the
  prompt encode waited for, far cheaper with random embeddings than with UMT5-XXL; annotators
  loaded and run once; cuDNN tuned; with `--compile` the VAE encoder compiled and every
  CUDA graph of its new stream cache captured), reported as `ttff_prepare_s` and not
  counted. `ttff_cold_s`: the row's first pipeline, creation → first frame, everything
  counted (compilation, capture, autotuning, allocator growth). Neither counts camera time
  (the probe does). `ttff_breakdown_ms`: the new pipeline's first call in the parts of the
  breakdown below (a first chunk encodes and annotates more frames); `ttff_annotation_ms`:
  the first chunk's annotation (`annotate`, on the annotator threads) and what the submitting
  call waited for it (`annotate_ahead_wait`, within `other`);
- breakdown per chunk (means): text (`stage_cache`: text K/V, transitions, references),
  annotate_wait (what the generator waited for its control frames), encode (VACE context /
  video-to-video input, host→device copy included; the context of a chunk is usually
  encoded ahead, on its own CUDA stream beside the previous chunk's DiT: then encode_wait
  is what the DiT still waited for it, encode_hidden the rest), dit, decode (device→host
  copy included), other (the call's remainder: resizes, frame packaging, Python, less the
  hidden encode); annotate (on
  the annotator threads, overlapped with the DiT); copies (the upload of a chunk's input and
  the download of its output, timed alone: part of encode and decode);
- DiT FLOP floor: the forwards actually run per chunk (counted) × `bench.dit.forward_flops`
  (full window) at the measured bf16 matmul rate; MFU = floor / measured DiT stage time;
- peak GPU memory since the row began (resident weights included; `peak_warmup_gb` the
  prepare's compiles and graph captures and the warm-up chunks, `peak_steady_gb` the timed
  calls), beside the peak `store.vram` estimates for the row's model and settings
  (`estimate_gb`, full-size models: how the estimate that refuses a too-small GPU is
  calibrated);
- with `--profile`, `PROFILE_CALLS` more calls profiled (`bench.kernels`): GPU busy and idle
  time, kernel time per CUDA stream and kind, the top kernels, a Chrome trace file;
- with `--memory-history`, who held the memory at the row's peak (`bench.memory`) and the
  allocator's snapshot.

`--suite` (`bench.suite`) runs the standard rows and prints each speed target beside what was
measured, with the spread over `--repeat` runs (a difference smaller than the spread is noise).
"""

from __future__ import annotations

import argparse

from livevace.bench.dit import parse_resolution
from livevace.bench.measure import PROFILE_CALLS, measure, memory_path, trace_path
from livevace.bench.probe import add_probe_arguments
from livevace.bench.report import spread, write_result
from livevace.bench.rig import add_setting_arguments, rig_for, settings_from
from livevace.bench.rows import one_line, print_rows
from livevace.bench.suite import run_suite, suite, suite_keys
from livevace.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_arguments(parser)
    parser.add_argument("--chunks", type=int, default=16,
                        help="timed chunks per row (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each row this many times and report the spread")
    parser.add_argument("--suite", action="store_true",
                        help="run the standard rows (text-to-video and VACE at the two sizes, "
                        "2-step VACE, glass to glass, memory) and print each speed target "
                        "beside what was measured")
    parser.add_argument("--profile", action="store_true",
                        help=f"after each row's timed chunks, profile {PROFILE_CALLS} more: GPU "
                        "time per CUDA stream and kernel kind, idle time, top kernels; the "
                        "Chrome trace (Perfetto) goes beside the results")
    parser.add_argument("--memory-history", action="store_true",
                        help="record the GPU allocator's history of each row: the snapshot "
                        "goes beside the results (https://pytorch.org/memory_viz) and the row "
                        "says which code held the memory at its peak (slows the host: not "
                        "for timing)")
    parser.add_argument("--suite-resolutions", type=lambda t: [parse_resolution(v) for v in
                                                               t.split(",")],
                        default=[(832, 480), (576, 320)],
                        help="the suite's LARGE,SMALL sizes (default 832x480,576x320)")
    parser.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="start no further suite row after this many seconds (the rows "
                        "done are reported; for a bounded device lease)")
    rows = suite((0, 0), (0, 0))[0]
    parser.add_argument("--rows", default=None,
                        help="only these suite rows (comma list of "
                        f"{', '.join(r.key for r in rows if not r.extra)}; and, never run "
                        f"unless named here: {', '.join(r.key for r in rows if r.extra)})")
    add_probe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1 or args.chunks < 1:
        raise UserError("bench pipeline: --repeat and --chunks must be at least 1")
    if args.suite:
        suite_keys(args)  # bad suite options fail before anything loads
    with rig_for(args) as rig:
        if args.suite:
            record = run_suite(rig, args)
        else:
            s = settings_from(args)
            rows = [{**measure(rig, s, args.chunks, args.warmup, trace_path(args, s),
                               memory_path(args, s)),
                     "repeat": k}
                    for k in range(args.repeat)]
            for row in rows:
                print(one_line(row))
            print_rows(rows)
            record = {"rows": rows, "fps": spread([r["fps"] for r in rows])}
            if args.repeat > 1:
                f = record["fps"]
                print(f"fps over {args.repeat} runs: median {f['median']:.2f}, "
                      f"{f['min']:.2f}–{f['max']:.2f} (spread {f['spread_%']:.1f} %)")
        record = {**rig.describe(), **record}
    print(f"matmul rate {record['matmul_tflops']:.3g} TFLOP/s; depth: {record['depth']}; "
          f"text encoder: {record['text_encoder']}")
    path = write_result("pipeline-suite" if args.suite else "pipeline",
                        {"args": {k: v for k, v in vars(args).items() if k != "func"},
                         **record}, args.out)
    print(f"wrote {path}")
    return 0
