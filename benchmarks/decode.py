"""Decode benchmark: vidlm vs naive sequential PyAV vs the ``ffmpeg -f null`` floor.

Jobs, each on a 60-minute 640x360 and a 10-minute 1280x720 H.264 file:

* ``1fps``: one frame per second over the whole video, consumed as a stream of chunks;
* ``uniform64``: 64 frames at the middles of 64 equal segments.

Frames are returned at 384x384 (FFmpeg's scaler). Every measurement runs in its own
subprocess; wall time, CPU time and the child's peak RSS (``ru_maxrss`` from
``os.wait4``) are reported, with each one's ratio to the ffmpeg floor measured in the
same run.

    nice python benchmarks/decode.py [--long360 V] [--long720 V] [--json out.json]

Missing videos are generated into ``--work-dir`` (default ``/tmp/vidlm-bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SIZE = (384, 384)
JOBS = ("1fps", "uniform64")
METHODS = ("ffmpeg_floor", "pyav_sequential", "vidlm", "vidlm_keyframes_only")
VIDEOS = {
    # name: (file name, lavfi source) -- H.264 superfast, keyframe every 250 frames
    "360p_60min": ("long_360p_60min.mp4", "testsrc2=size=640x360:rate=30:duration=3600"),
    "720p_10min": ("long_720p_10min.mp4", "testsrc2=size=1280x720:rate=30:duration=600"),
}


@dataclass
class Result:
    video: str
    job: str
    method: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    frames: int
    ratio_to_floor: float | None = None


def generate(name: str, work_dir: Path) -> Path:
    file_name, source = VIDEOS[name]
    out = work_dir / file_name
    if out.exists():
        return out
    work_dir.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f"{out.stem}.part.mp4")
    print(f"generating {out} (a few minutes) ...", file=sys.stderr, flush=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", source, "-c:v", "libx264", "-preset", "superfast", "-g", "250",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(part)], check=True)
    part.replace(out)
    return out


# ---- workers: each runs in a fresh subprocess and prints the number of frames it got ----

def work_pyav_sequential(path: str, job: str) -> int:
    """The naive way: decode every frame, convert the ones the job wants."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # same frame threading as vidlm, for a fair comparison
        start = stream.start_time or 0
        tb = float(stream.time_base)
        duration = float(stream.duration * stream.time_base)
        if job == "1fps":
            targets = [float(t) for t in range(int(duration))]
        else:
            targets = [(i + 0.5) * duration / 64 for i in range(64)]
        got, j = 0, 0
        for frame in container.decode(stream):
            t = (frame.pts - start) * tb
            if j < len(targets) and t + 1e-6 >= targets[j]:
                frame.reformat(SIZE[0], SIZE[1], "rgb24").to_ndarray()
                got += 1
                while j < len(targets) and targets[j] <= t + 1e-6:
                    j += 1
            if j == len(targets):
                break
    return got


def work_vidlm(path: str, job: str, keyframes_only: bool = False) -> int:
    from vidlm import video

    if job == "1fps":
        policy = video.fps(1.0, max_frames=10**9)
        return sum(len(chunk) for chunk in video.stream(path, policy, chunk=32, size=SIZE,
                                                        keyframes_only=keyframes_only))
    return len(video.read(path, video.uniform(64), size=SIZE, keyframes_only=keyframes_only))


def run_worker(method: str, job: str, path: str) -> None:
    if method == "pyav_sequential":
        n = work_pyav_sequential(path, job)
    elif method == "vidlm":
        n = work_vidlm(path, job)
    elif method == "vidlm_keyframes_only":
        n = work_vidlm(path, job, keyframes_only=True)
    else:
        raise SystemExit(f"unknown method {method}")
    print(n)


# ---- the driver ----

def measure_child(cmd: list[str]) -> tuple[float, float, float, str]:
    """``(wall seconds, CPU seconds, peak RSS MB, stdout)`` of one child, reaped with
    ``wait4`` so the resource usage is that child's alone. CPU time (user + system, all
    threads) is the steadier number on a machine shared with other work."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, out


def bench_video(name: str, path: Path, methods: list[str], jobs: list[str]) -> list[Result]:
    results: list[Result] = []
    floor = None
    if "ffmpeg_floor" in methods:
        secs, cpu, rss, _ = measure_child(["ffmpeg", "-hide_banner", "-loglevel", "error",
                                           "-threads", "2", "-i", str(path), "-f", "null", "-"])
        floor = secs
        results.append(Result(name, "decode all", "ffmpeg_floor", secs, cpu, rss, 0, 1.0))
        print(f"{name:11} {'decode all':10} {'ffmpeg_floor':21} {secs:8.1f} s {cpu:8.1f} cpu-s "
              f"{rss:7.0f} MB", file=sys.stderr, flush=True)
    for job in jobs:
        for method in methods:
            if method == "ffmpeg_floor":
                continue
            cmd = [sys.executable, __file__, "--worker", method, job, str(path)]
            secs, cpu, rss, out = measure_child(cmd)
            ratio = secs / floor if floor else None
            frames = int(out.strip() or 0)
            results.append(Result(name, job, method, secs, cpu, rss, frames, ratio))
            print(f"{name:11} {job:10} {method:21} {secs:8.1f} s {cpu:8.1f} cpu-s {rss:7.0f} MB "
                  f"{frames:6d} frames", file=sys.stderr, flush=True)
    return results


def table(results: list[Result]) -> str:
    lines = ["| video | job | method | wall s | CPU s | peak RSS MB | frames | wall / floor "
             "| CPU / floor | vs sequential (wall, CPU) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    seq = {(r.video, r.job): r for r in results if r.method == "pyav_sequential"}
    floor_cpu = {r.video: r.cpu_seconds for r in results if r.method == "ffmpeg_floor"}
    for r in results:
        ratio = f"{r.ratio_to_floor:.2f}" if r.ratio_to_floor is not None else "-"
        fc = floor_cpu.get(r.video)
        cpu_ratio = f"{r.cpu_seconds / fc:.2f}" if fc else "-"
        base = seq.get((r.video, r.job))
        speed = (f"{base.seconds / r.seconds:.1f}x, {base.cpu_seconds / r.cpu_seconds:.1f}x"
                 if base and r.method.startswith("vidlm") else "-")
        lines.append(f"| {r.video} | {r.job} | {r.method} | {r.seconds:.1f} | "
                     f"{r.cpu_seconds:.1f} | {r.peak_rss_mb:.0f} | {r.frames or '-'} | {ratio} "
                     f"| {cpu_ratio} | {speed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        run_worker(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long360", type=Path, help="a 60-minute 640x360 H.264 file")
    parser.add_argument("--long720", type=Path, help="a 10-minute 1280x720 H.264 file")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/vidlm-bench"))
    parser.add_argument("--videos", nargs="+", default=list(VIDEOS), choices=list(VIDEOS))
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed; run scripts/setup.sh")
    given = {"360p_60min": args.long360, "720p_10min": args.long720}
    results: list[Result] = []
    for name in args.videos:
        path = given[name] or generate(name, args.work_dir)
        results += bench_video(name, path, args.methods, args.jobs)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
                        "python": platform.python_version()},
            "size": list(SIZE), "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
