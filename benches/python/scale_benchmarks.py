"""Scale table: medlink indexes from the real combined vocabularies up to 3 million names.

    cargo build --release && python3 benches/python/scale_benchmarks.py --write

1. Builds (if missing) an index over every vocabulary in ../shared/data combined (HPO, MEDIC
   2012, CTD 2017, MeSH, ICD-10-CM, DOID) with `medlink index build`: real encoding; wall time
   and peak RSS of that process.
2. For each size, `cargo bench --bench scale -- synth` builds a synthetic index from it (real
   names with qualifier variants, vectors precomputed: see benches/scale.rs), then
   `-- query` opens it in a fresh process and measures RSS, dense and hybrid query latency
   (one mention at a time, k 25, encoder excluded) and recall@25 against a full scan.
3. Writes benches/results/scale.json, the plot benches/results/scale.svg and, with --write,
   BENCHMARKS.md's SCALE block with per-name costs projected to UMLS and SNOMED CT.
Needs about 12 GB of memory and 15 GB of disk under target/scale for the 3 M index. Each
finished step is saved under target/scale as it ends: `--resume` re-runs only the missing ones
(a whole run takes over an hour on 2 cores).
"""
import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
VOCABULARIES = [
    f"obo:{SHARED / 'hpo/hp.obo'}",
    f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
    f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}",
    f"mesh:{SHARED / 'vocab/mesh/mesh_descriptors_2026-01-27_labels.csv'}",
    f"icd10cm:{SHARED / 'icd10cm/icd10c-tabular-April-1-2026.xml'}",
    f"obo:{SHARED / 'disease_ontology/doid_2016-09-01/doid.obo'}",
]
# Names in the reference terminologies the table projects to.
PROJECTIONS = [("SNOMED CT (English descriptions)", 1_500_000), ("UMLS (English strings)", 10_000_000)]


def dir_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def build_combined(medlink, out):
    """Real build over the combined vocabularies: wall seconds and peak RSS of the child."""
    cmd = [medlink, "index", "build", "--out", str(out)]
    for spec in VOCABULARIES:
        cmd += ["--ontology", spec]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    manifest = json.loads((out / "manifest.json").read_text())
    record = {
        "names": manifest["counts"]["names"],
        "concepts": manifest["counts"]["concepts"],
        "build_seconds": wall,
        # ru_maxrss of children is the largest child so far: this build runs first.
        "peak_rss_mib": max(peak, before) / 1024,
        "disk_bytes": dir_bytes(out),
    }
    (out / "build.json").write_text(json.dumps(record))
    return record


def bench(*args):
    out = subprocess.run(
        ["cargo", "bench", "-q", "--bench", "scale", "--", *map(str, args)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def svg_plot(rows, path):
    """Four small log-x charts: build time, memory, query latency, recall."""
    panels = [
        ("build time (s)", [("build", "build_seconds", "#1f77b4")]),
        ("memory (MiB)", [("RSS after 1,000 queries", "rss_queried_mib", "#d62728"),
                          ("build peak RSS", "build_peak_rss_mib", "#7f7f7f"),
                          ("on disk", "disk_mib", "#2ca02c")]),
        ("query latency (ms)", [("hybrid p99", "hybrid_p99_ms", "#d62728"),
                                ("hybrid p50", "hybrid_p50_ms", "#ff9896"),
                                ("dense p99", "dense_p99_ms", "#1f77b4"),
                                ("dense p50", "dense_p50_ms", "#aec7e8")]),
        ("recall@25 vs exact", [("recall@25", "recall_at_25", "#9467bd")]),
    ]
    w, h, pad = 360, 230, 48
    xs = [r["names"] for r in rows]
    lx0, lx1 = math.log10(min(xs)) - 0.1, math.log10(max(xs)) + 0.1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{2 * h}" '
             'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']
    for p, (title, series) in enumerate(panels):
        ox, oy = (p % 2) * w, (p // 2) * h
        values = [r[key] for _, key, _ in series for r in rows if r.get(key) is not None]
        lo = 0.0 if title != "recall@25 vs exact" else min(0.95, min(values))
        hi = max(values) * 1.1 if title != "recall@25 vs exact" else 1.0
        sx = lambda n: ox + pad + (math.log10(n) - lx0) / (lx1 - lx0) * (w - pad - 12)  # noqa: E731
        sy = lambda v: oy + h - pad + 12 - (v - lo) / (hi - lo or 1) * (h - pad - 24)  # noqa: E731
        parts.append(f'<text x="{ox + w / 2}" y="{oy + 14}" text-anchor="middle" font-weight="bold">{title}</text>')
        parts.append(f'<line x1="{sx(10 ** lx0)}" y1="{sy(lo)}" x2="{sx(10 ** lx1)}" y2="{sy(lo)}" stroke="black"/>')
        parts.append(f'<line x1="{sx(10 ** lx0)}" y1="{sy(lo)}" x2="{sx(10 ** lx0)}" y2="{sy(hi)}" stroke="black"/>')
        for n in xs:
            label = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"
            parts.append(f'<text x="{sx(n)}" y="{sy(lo) + 14}" text-anchor="middle">{label}</text>')
        for t in range(5):
            v = lo + (hi - lo) * t / 4
            parts.append(f'<text x="{sx(10 ** lx0) - 4}" y="{sy(v) + 4}" text-anchor="end">{v:.3g}</text>')
        for s, (label, key, colour) in enumerate(series):
            pts = [(sx(r["names"]), sy(r[key])) for r in rows if r.get(key) is not None]
            parts.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
                colour, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
            for x, y in pts:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
            parts.append(f'<text x="{ox + pad + 6}" y="{oy + 30 + 12 * s}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/scale"))
    ap.add_argument("--sizes", default="100000,300000,1000000,3000000")
    ap.add_argument("--i8-sizes", default="1000000,3000000", help="sizes also built with i8 vectors")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic indexes")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows an interrupted run saved (WORK/rows.json, WORK/combined-query.json) "
                         "and run only the missing ones")
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    ap.add_argument("--render", action="store_true",
                    help="only re-render BENCHMARKS.md's block from benches/results/scale.json (no runs)")
    args = ap.parse_args()
    if args.render:
        saved = json.loads((ROOT / "benches/results/scale.json").read_text())
        replace_block("SCALE", render(saved["combined"], saved["synthetic"], saved["cpu"]))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    combined = work / "combined"
    if (combined / "build.json").is_file():
        real_build = json.loads((combined / "build.json").read_text())
    else:
        print("building the combined index (real encoding) ...", file=sys.stderr)
        real_build = build_combined(args.medlink, combined)
    # Each finished step is saved as it ends, so a run cut short (a session's end) resumes.
    real_query_file, rows_file = work / "combined-query.json", work / "rows.json"
    if args.resume and real_query_file.is_file():
        real_query = json.loads(real_query_file.read_text())
    else:
        real_query = bench("query", "--index", combined)
        real_query_file.write_text(json.dumps(real_query))
    real = {**real_query, "build_seconds": real_build["build_seconds"],
            "build_peak_rss_mib": real_build["peak_rss_mib"], "disk_mib": real_build["disk_bytes"] / 2 ** 20,
            "concepts": real_build["concepts"], "kind": "combined vocabularies (real encoding)"}
    saved_rows = json.loads(rows_file.read_text()) if args.resume and rows_file.is_file() else []
    rows = []
    plan = [(int(n), "f16") for n in args.sizes.split(",")]
    plan += [(int(n), "i8") for n in args.i8_sizes.split(",") if n]
    for size, kind in plan:
        saved = [r for r in saved_rows if r.get("target") == size and r["vectors"] == kind]
        if saved:
            rows.append(saved[0])
            continue
        out = work / f"synthetic-{size}-{kind}"
        print(f"synthetic index of {size:,} names, {kind} vectors ...", file=sys.stderr)
        built = bench("synth", "--base", combined, "--names", size, "--out", out, "--vectors", kind)
        queried = bench("query", "--index", out)
        rows.append({**queried, "build_seconds": built["build_seconds"],
                     "build_peak_rss_mib": built["peak_rss_mib"], "disk_mib": built["disk_bytes"] / 2 ** 20,
                     "concepts": built["concepts"], "kind": "synthetic (precomputed vectors)", "target": size})
        print(json.dumps(rows[-1]), file=sys.stderr)
        rows_file.write_text(json.dumps(rows + [r for r in saved_rows if r not in rows], indent=1))
        if not args.keep:
            subprocess.run(["rm", "-rf", str(out)], check=True)
    results = ROOT / "benches/results"
    results.mkdir(exist_ok=True)
    (results / "scale.json").write_text(json.dumps({"cpu": cpu_name(), "combined": real, "synthetic": rows}, indent=1))
    svg_plot([r for r in rows if r["vectors"] == "f16"], results / "scale.svg")
    if args.write:
        replace_block("SCALE", render(real, rows, cpu_name()))


def render(real, rows, cpu):
    def row(label, r):
        per_million = r["rss_queried_mib"] / (r["names"] / 1e6)
        bound = (r["rss_open_mib"] + (r["vector_bytes"] + r["lexical_bytes"]) / 2 ** 20) / (r["names"] / 1e6)
        return (f"| {label} | {r['vectors']} | {r['names']:,} | {r['build_seconds']:.0f} | {r['build_peak_rss_mib']:,.0f} | "
                f"{r['disk_mib']:,.0f} | {r['open_seconds']:.2f} | {r['rss_queried_mib']:,.0f} | "
                f"{per_million:,.0f} / {bound:,.0f} | {r['dense_p50_ms']:.2f} / {r['dense_p99_ms']:.2f} | "
                f"{r['hybrid_p50_ms']:.2f} / {r['hybrid_p99_ms']:.2f} | {r['recall_at_25']:.4f} |")

    lines = [
        f"Machine: {cpu}, 2 cores. `python3 benches/python/scale_benchmarks.py --write`; "
        "HNSW M 16 / ef_construction 200 / ef_search as `index build` sets it (64; 128 past 1.5 M names), "
        "one query at a time on one thread, k 25, "
        "encoder excluded (precomputed query vectors). Plot: `benches/results/scale.svg`.",
        "",
        "| index | vectors | names | build (s) | build peak RSS (MiB) | on disk (MiB) | open (s) | RSS after 1,000 queries (MiB) "
        "| MiB per million names: measured / every page resident | dense search p50 / p99 (ms) "
        "| hybrid link p50 / p99 (ms) | recall@25 vs exact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        row("combined vocabularies, real encoding", real),
    ]
    for r in rows:
        lines.append(row("synthetic", r))
    lines.append("")
    lines += memory_goal(rows)
    lines += ef_sweep(real, rows)
    for kind in ["f16", "i8"]:
        sized = [r for r in rows if r["vectors"] == kind]
        if sized:
            lines += project(sized[-1], kind, real)
    return "\n".join(lines)


def memory_goal(rows):
    """The largest index of each vector type against the goal: <= 1 GB per million names at query
    time (every page of the index resident), recall@25 vs exact >= 0.99."""
    lines = []
    for kind in ["f16", "i8"]:
        sized = [r for r in rows if r["vectors"] == kind]
        if not sized:
            continue
        r = sized[-1]
        per_million = max(r["rss_queried_mib"], r["rss_open_mib"] + (r["vector_bytes"] + r["lexical_bytes"]) / 2 ** 20)
        gb = per_million * 2 ** 20 / 1e9 / (r["names"] / 1e6)
        verdict = "meets" if gb <= 1.0 and r["recall_at_25"] >= 0.99 else "misses"
        lines.append(f"- {kind}, {r['names']:,} names: {gb:.2f} GB per million names with every page resident, "
                     f"recall@25 {r['recall_at_25']:.4f} at ef {r['ef_search']}: {verdict} the goal "
                     "(<= 1 GB per million names, recall@25 >= 0.99).")
    return lines + [""] if lines else []


def ef_sweep(real, rows):
    """recall@25 and dense search latency at wider search breadths (`index build --ef-search`)."""
    breadths = [s["ef"] for s in real.get("ef_sweep", [])]
    if not breadths:
        return []
    lines = [
        "Search breadth: recall@25 vs exact and dense search p50 / p99 (ms, the linker's pool of 64) at "
        "each `ef_search` (`medlink index build --ef-search N`), measured after the table above, with the "
        "index's pages already warm (hence lower latencies than its cold first pass):",
        "",
        "| index | vectors | names | " + " | ".join(f"ef {b}: recall@25, p50 / p99 ms" for b in breadths) + " |",
        "|---|---|---|" + "---|" * len(breadths),
    ]
    for label, r in [("combined vocabularies", real)] + [("synthetic", r) for r in rows]:
        cells = [f"{s['recall_at_25']:.4f}, {s['p50_ms']:.2f} / {s['p99_ms']:.2f}" for s in r["ef_sweep"]]
        lines.append(f"| {label} | {r['vectors']} | {r['names']:,} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def project(big, kind, real):
    lines = []
    per_name_disk = big["disk_mib"] * 2 ** 20 / big["names"]
    per_name_resident = (big["rss_open_mib"] * 2 ** 20 + big["vector_bytes"] + big["lexical_bytes"]) / big["names"]
    per_name_peak = big["build_peak_rss_mib"] * 2 ** 20 / big["names"]
    # Build time grows as N log N (each insertion searches a graph of log N layers).
    rate = big["build_seconds"] / (big["names"] * math.log(big["names"]))
    lines += [
        f"Projected from the {big['names']:,}-name {kind} row (bytes per name: {per_name_disk:,.0f} on disk, "
        f"{per_name_resident:,.0f} with every page resident, {per_name_peak:,.0f} at build peak; "
        "build time scaled as N log N, graph and lexical build only: encoding is extra, "
        f"{real['names'] / real['build_seconds']:,.0f} names/s for the whole combined build here):",
        "",
        "| terminology | names | on disk (GB) | memory, every page resident (GB) | build peak (GB) | build (h, vectors given) |",
        "|---|---|---|---|---|---|",
    ]
    for name, n in PROJECTIONS:
        lines.append(f"| {name} | {n:,} | {per_name_disk * n / 1e9:.1f} | {per_name_resident * n / 1e9:.1f} | "
                     f"{per_name_peak * n / 1e9:.1f} | {rate * n * math.log(n) / 3600:.1f} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    main()
