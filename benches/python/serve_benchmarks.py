"""Load test of `medlink serve` beside the Python reference (serve_reference.py): single-mention
`POST /v1/link` at 1, 8 and 64 connections for 60 s each (benches/serve_load.rs, closed loop,
keep-alive, loopback only), both services on the default HPO index's model and ontology, in the
same run on the same machine. With --write, replaces the SERVE block of BENCHMARKS.md.

    cargo build --release && python3 benches/python/serve_benchmarks.py --write
    python3 benches/python/serve_benchmarks.py --seconds 10   # a quick look

--ab "FLAGS" compares medlink with itself instead: the defaults and `medlink serve FLAGS`
alternate at each level, five times, and each run's line is printed (no reference, no --write),
e.g. the serving defaults against the ones before 2026-12-07:

    python3 benches/python/serve_benchmarks.py --int8 --connections 8 --seconds 20 \
        --ab "--encoder-workers 1 --max-active 512"
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["fastapi", "uvicorn", "sentence-transformers", "faiss-cpu"])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from benchmarks_md import replace_block  # noqa: E402

ROOT = refenv.ROOT
# The CPUs this process may use, as medlink counts them (affinity, not the machine's total).
cores = len(os.sched_getaffinity(0))


def cpu_model():
    from benchmarks_md import cpu_name

    return cpu_name()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=900):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the service exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} not ready in {seconds}s")


def load(url, connections, seconds):
    out = subprocess.run(
        ["cargo", "bench", "-q", "--bench", "serve_load", "--", "--url", url,
         "--connections", str(connections), "--seconds", str(seconds), "--warmup", "3"],
        cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_medlink(args, extra):
    port = free_port()
    # The load generator cycles through a fixed list of mentions, which a mention cache would
    # answer from memory after one pass: medlink runs with its cache off, like the reference.
    server = subprocess.Popen([args.medlink, "serve", "--addr", f"127.0.0.1:{port}", "--mention-cache", "0",
                               *(["--int8"] if args.int8 else []), *extra],
                              stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/readyz", server)
    return server, f"http://127.0.0.1:{port}/v1/link"


def ab(args, levels):
    """medlink's defaults against `--ab` flags, alternating, one fresh server per run."""
    for c in levels:
        arms = [("defaults", []), (args.ab, shlex.split(args.ab))]
        for repeat in range(5):
            # Each arm goes first in turn, so a drift in the machine's speed favours neither.
            for label, extra in arms[::-1] if repeat % 2 else arms:
                server, url = start_medlink(args, extra)
                try:
                    print(f"{c} connections, {label}:", json.dumps(load(url, c, args.seconds)), flush=True)
                finally:
                    stop(server)
    print(f"Machine: {cpu_model()}, {cores} cores; {'int8' if args.int8 else 'f32'} encoder; "
          f"{args.seconds:.0f} s per run after a 3 s warm-up; {time.strftime('%Y-%m-%d')}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--int8", action="store_true", help="serve with the int8 encoder (`medlink serve --int8`); writes the SERVE_INT8 block")
    p.add_argument("--connections", default="1,8,64")
    p.add_argument("--medlink", default=str(ROOT / "target" / "release" / "medlink"))
    p.add_argument("--write", action="store_true")
    p.add_argument("--ab", metavar="FLAGS", help="compare medlink's defaults with `medlink serve FLAGS` (see above)")
    p.add_argument("--ref-threads", type=int, default=1,
                   help="torch threads of the reference: with 2, a neighbour's load on the other "
                        "core stalled torch's OpenMP workers (8 req/s instead of 67 at 1 connection)")
    p.add_argument("--note", default="", help="appended to the machine line (e.g. other load on it)")
    args = p.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    cache = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
    subprocess.run(["cargo", "bench", "-q", "--bench", "serve_load", "--no-run"], cwd=ROOT, check=True)
    if args.ab:
        if args.write:
            raise SystemExit("--ab compares medlink with itself and writes nothing: drop --write")
        return ab(args, levels)

    # Both services run side by side and take turns at each level, so a neighbour's load on a
    # shared machine falls on both alike. medlink serves the default index (built on first use,
    # as `medlink search` does); the reference reads the same model and ontology file.
    server, url = start_medlink(args, [])
    manifest = json.loads((cache / "indexes" / "hpo-all-MiniLM-L6-v2" / "manifest.json").read_text())
    ref_port = free_port()
    ref = subprocess.Popen([sys.executable, str(Path(__file__).parent / "serve_reference.py"),
                            "--model", manifest["model_path"], "--obo", manifest["sources"][0]["path"],
                            "--port", str(ref_port)],
                           env={**os.environ, "OMP_NUM_THREADS": str(args.ref_threads)})
    wait_ready(f"http://127.0.0.1:{ref_port}/healthz", ref)
    medlink, reference = {}, {}
    try:
        for c in levels:
            medlink[c] = load(url, c, args.seconds)
            print("medlink", json.dumps(medlink[c]), flush=True)
            reference[c] = load(f"http://127.0.0.1:{ref_port}/v1/link", c, args.seconds)
            print("reference", json.dumps(reference[c]), flush=True)
    finally:
        stop(server)
        stop(ref)

    import sentence_transformers
    import torch
    rows = ["| connections | medlink p50 / p99 ms | medlink req/s | reference p50 / p99 ms | reference req/s | "
            "throughput ratio | p99 ratio (ref / medlink) | errors (medlink / ref) |",
            "|---|---|---|---|---|---|---|---|"]
    for c in levels:
        m, r = medlink[c], reference[c]
        rows.append(f"| {c} | {m['p50_ms']:.1f} / {m['p99_ms']:.1f} | {m['rps']:.0f} | "
                    f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['rps']:.0f} | "
                    f"{m['rps'] / max(r['rps'], 1e-9):.2f}x | {r['p99_ms'] / max(m['p99_ms'], 1e-9):.2f}x | "
                    f"{m['errors']} / {r['errors']} |")
    body = "\n".join(rows) + (
        f"\n\nMachine: {cpu_model()}, {cores} cores; {args.seconds:.0f} s per level after a 3 s warm-up; "
        f"medlink {manifest['medlink_version']} ({'int8' if args.int8 else 'f32'} encoder; defaults: {cores} encoder workers of one thread, batches up to 128, {str(cores + 1) + ' requests' if args.int8 else 'no limit on requests'} working at once; mention cache off); reference: FastAPI + uvicorn "
        f"(1 worker, torch {args.ref_threads} thread(s)), sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
        f"faiss HNSW; model {manifest['model']['name']}, {manifest['counts']['names']} names; "
        f"the two services alternate at each level. Measured {time.strftime('%Y-%m-%d')}. {args.note}")
    print(body)
    if args.write:
        replace_block("SERVE_INT8" if args.int8 else "SERVE", body)


if __name__ == "__main__":
    main()
