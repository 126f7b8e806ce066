"""Accuracy, memory and speed of f32 / f16 / i8 stored vectors, same names, same model.

    cargo build --release && python3 benches/python/vector_types.py --write

Builds the MEDIC 2012 and CTD 2017 indexes once with f32 vectors (`medlink index build
--vectors f32`), derives the f16 and i8 indexes from them without re-embedding (`medlink index
convert`), and runs `medlink eval link` (medlink's raw protocol, concept-level top-k) on
NCBI-disease test and BC5CDR dev disease mentions, dense and hybrid, on each. Also records each
index's vector bytes and the wall time and peak RSS of every evaluation. With --write, replaces
BENCHMARKS.md's VECTOR_TYPES block.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block, stale_index  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
VOCABULARIES = {
    "MEDIC 2012": f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
    "CTD 2017": f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}",
}
RUNS = [
    ("NCBI-disease test", f"pubtator:{SHARED / 'ncbi_disease/NCBItestset_corpus.txt'}", "MEDIC 2012"),
    ("BC5CDR dev disease", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}#types=Disease", "CTD 2017"),
]
TYPES = ["f32", "f16", "i8"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/vector-types"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for vocab, spec in VOCABULARIES.items():
        base = work / f"{vocab.replace(' ', '-')}-f32"
        if stale_index(base, args.medlink):
            subprocess.run([args.medlink, "index", "build", "--vectors", "f32", "--ontology", spec,
                            "--out", str(base)], check=True)
        for kind in TYPES[1:]:
            out = work / f"{vocab.replace(' ', '-')}-{kind}"
            subprocess.run([args.medlink, "index", "convert", "--index", str(base), "--vectors", kind,
                            "--out", str(out)], check=True)
        for kind in TYPES:
            d = work / f"{vocab.replace(' ', '-')}-{kind}"
            sizes[(vocab, kind)] = ((d / "vectors.bin").stat().st_size, (d / "graph.bin").stat().st_size)
    # ru_maxrss of children is a maximum over all of them: each evaluation runs under its own
    # small Python parent so that its peak RSS is its own.
    results = []
    for label, corpus, vocab in RUNS:
        for mode in ["dense", "hybrid"]:
            for kind in TYPES:
                index = work / f"{vocab.replace(' ', '-')}-{kind}"
                cmd = [args.medlink, "eval", "link", "--index", str(index), "--corpus", corpus, "--mode", mode,
                       "--ks", "1,5,25", "--json"]
                probe = [sys.executable, "-c",
                         "import json,resource,subprocess,sys,time;s=time.time();"
                         "o=subprocess.run(sys.argv[1:],check=True,capture_output=True,text=True).stdout;"
                         "print(json.dumps({'out':o,'wall':time.time()-s,"
                         "'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))", *cmd]
                measured = json.loads(subprocess.run(probe, check=True, capture_output=True, text=True).stdout)
                r = json.loads(measured["out"])
                results.append({"corpus": label, "vocab": vocab, "mode": mode, "type": kind,
                                "acc@1": r["acc@1"], "acc@5": r["acc@5"], "acc@25": r["acc@25"],
                                "evaluated": r["evaluated"], "wall": measured["wall"], "rss": measured["rss"]})
                print(json.dumps(results[-1]), file=sys.stderr)
    (ROOT / "benches/results").mkdir(exist_ok=True)
    (ROOT / "benches/results/vector_types.json").write_text(json.dumps(results, indent=1))
    if args.write:
        replace_block("VECTOR_TYPES", render(results, sizes))


def render(results, sizes):
    f32 = {(r["corpus"], r["mode"]): r for r in results if r["type"] == "f32"}
    lines = [
        f"Machine: {cpu_name()}, 2 cores. `python3 benches/python/vector_types.py --write`: the same f32 "
        "vectors stored three ways (`medlink index convert`), graph rebuilt over each; raw protocol, "
        "concept-level top-k; Δ = acc@1 minus f32's, in points.",
        "",
        "| corpus (dictionary) | signals | vectors | vectors.bin (MiB) | graph.bin (MiB) | acc@1 | Δ acc@1 | acc@5 | acc@25 | eval wall (s) | eval peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        vec_bytes, graph_bytes = sizes[(r["vocab"], r["type"])]
        delta = 100 * (r["acc@1"] - f32[(r["corpus"], r["mode"])]["acc@1"])
        lines.append(
            f"| {r['corpus']} ({r['vocab']}, {r['evaluated']:,} mentions) | {r['mode']} | {r['type']} | "
            f"{vec_bytes / 2 ** 20:.1f} | {graph_bytes / 2 ** 20:.1f} | {r['acc@1']:.4f} | {delta:+.2f} | "
            f"{r['acc@5']:.4f} | {r['acc@25']:.4f} | {r['wall']:.1f} | {r['rss']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
