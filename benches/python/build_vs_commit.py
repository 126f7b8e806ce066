#!/usr/bin/env python3
"""Index build time and memory: today's medlink against an earlier commit, same machine.

Build speed is judged against what medlink did before a change (issue 11 asks the MEDIC 2012
build to take at most 0.7x its time before that work), and this VM's speed drifts within
minutes, so both binaries run here, in turns. The earlier commit is checked out into a git
worktree under target/ and built there with its own Cargo.lock (a cold release build takes
about 10 minutes on 2 cores; the binary is kept for the next run).

    cargo build --release && python3 benches/python/build_vs_commit.py --write

Writes the BUILD_VS_COMMIT block of BENCHMARKS.md with --write. Only standard-library Python.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
# The last commit before issue 11's work on speed and memory began.
BEFORE = "1e1c66d"
ONTOLOGY = f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}"


def build_commit(rev):
    """The release binary of `rev`, built in a worktree of its own (kept between runs)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = ROOT / "target" / f"worktree-{sha}"
    target = ROOT / "target" / f"build-{sha}"
    binary = target / "release" / "medlink"
    if binary.exists():
        return sha, binary
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), sha], cwd=ROOT, check=True)
    print(f"building medlink at {sha} (a cold release build)", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--bin", "medlink"], cwd=tree, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    return sha, binary


def timed_build(binary, out):
    """(wall seconds, peak RSS MiB, directory MiB) of one `index build` into a fresh `out`."""
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([str(binary), "index", "build", "--ontology", ONTOLOGY, "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"{binary} index build failed:\n{err.read().decode('utf-8', 'replace')}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return wall, usage.ru_maxrss / 1024, size / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE, help="the earlier commit (default: before issue 11)")
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--runs", type=int, default=2, help="builds of each binary, in turns")
    ap.add_argument("--write", action="store_true", help="replace the BUILD_VS_COMMIT block")
    args = ap.parse_args()

    sha, before = build_commit(args.before)
    sides = [(f"`{sha}` (before)", before), ("this commit", Path(args.medlink))]
    samples = {label: [] for label, _ in sides}
    work = Path(tempfile.mkdtemp(prefix="medlink-build-vs-commit-"))
    try:
        for r in range(args.runs):
            # The order swaps each round, so neither side always follows the other.
            for label, binary in sides if r % 2 == 0 else sides[::-1]:
                wall, peak, size = timed_build(binary, work / "index")
                print(f"{label}: {wall:.1f} s, peak {peak:.0f} MiB, {size:.0f} MiB on disk", file=sys.stderr)
                samples[label].append((wall, peak, size))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    base = statistics.median(w for w, _, _ in samples[sides[0][0]])
    for label, _ in sides:
        walls = [w for w, _, _ in samples[label]]
        wall = statistics.median(walls)
        peak = max(p for _, p, _ in samples[label])
        size = samples[label][-1][2]
        runs = " / ".join(f"{w:.0f}" for w in walls)
        rows.append(f"| {label} | {runs} | {wall / base:.2f} | {peak:,.0f} | {size:,.0f} |")
    body = "\n".join([
        f"Machine: {cpu_name()}, {os.cpu_count()} cores. `python3 benches/python/build_vs_commit.py --write`: "
        f"`medlink index build` of MEDIC 2012 (default model and settings of each commit), "
        f"{args.runs} builds of each binary in turns; wall time relative to the median of the earlier commit's.",
        "",
        "| medlink | build wall time per run (s) | time / before | peak RSS (MiB) | index on disk (MiB) |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    if args.write:
        replace_block("BUILD_VS_COMMIT", body)


if __name__ == "__main__":
    main()
