"""What the int8 encoder (`--int8`) costs in accuracy and gains in speed, same names, same model.

    cargo build --release && python3 benches/python/int8_encoder.py --write

Builds the MEDIC 2012 and CTD 2017 indexes twice, once with the f32 encoder and once with
`--int8`, and runs `medlink eval link` (raw protocol, concept-level top-k) on NCBI-disease test
and BC5CDR dev disease mentions, dense and hybrid, three ways: f32 throughout, int8 queries
against the f32-built index (what a service switching to int8 gets), and int8 throughout. Then
times `medlink embed` on 5,000 HPO names in batches of 128 (index building) and one string at a
time (a service linking single mentions), f32 and int8, alternating, best of three. With
--write, replaces BENCHMARKS.md's INT8_ENCODER block.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block, stale_index, throughput  # noqa: E402
from vector_types import ROOT, RUNS, SHARED, VOCABULARIES  # noqa: E402  (the same corpora)

# (label, index built with, queries encoded with)
ARMS = [("f32", "f32", "f32"), ("int8 queries, f32 index", "f32", "int8"), ("int8 throughout", "int8", "int8")]
HPO_OBO = SHARED / "hpo" / "hp.obo"


def flag(precision):
    return ["--int8"] if precision == "int8" else []


def hpo_names(limit):
    names = []
    for line in HPO_OBO.read_text(encoding="utf-8").splitlines():
        if line.startswith("name: "):
            names.append(line[6:])
        elif line.startswith("synonym: \""):
            names.append(line.split('"')[1])
        if len(names) >= limit:
            break
    return names


def embed_rate(medlink, names, precision, batch_size):
    out = subprocess.run([medlink, "embed", "--quiet", "--batch-size", str(batch_size), *flag(precision)],
                         input="\n".join(names) + "\n", capture_output=True, text=True, check=True)
    return throughput(out.stdout + out.stderr, "strings/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/int8-encoder"))
    ap.add_argument("--names", type=int, default=5000, help="HPO names for the speed rows")
    ap.add_argument("--write", action="store_true", help="replace BENCHMARKS.md's INT8_ENCODER block")
    ap.add_argument("--render", action="store_true",
                    help="write the block from benches/results/int8_encoder.json without measuring")
    args = ap.parse_args()
    results_file = ROOT / "benches/results/int8_encoder.json"
    if args.render:
        saved = json.loads(results_file.read_text())
        speed = {(r["batch_size"], r["precision"]): r["strings_per_s"] for r in saved["speed"]}
        replace_block("INT8_ENCODER", render(saved["accuracy"], speed, saved["names"], saved["machine"]))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    for vocab, spec in VOCABULARIES.items():
        for precision in ["f32", "int8"]:
            out = work / f"{vocab.replace(' ', '-')}-{precision}"
            if stale_index(out, args.medlink):
                subprocess.run([args.medlink, "index", "build", "--ontology", spec, "--out", str(out),
                                *flag(precision)], check=True)

    accuracy = []
    for label, corpus, vocab in RUNS:
        for mode in ["dense", "hybrid"]:
            for arm, built, queries in ARMS:
                index = work / f"{vocab.replace(' ', '-')}-{built}"
                cmd = [args.medlink, "eval", "link", "--index", str(index), "--corpus", corpus, "--mode", mode,
                       "--ks", "1,5,25", "--json", *flag(queries)]
                r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                accuracy.append({"corpus": label, "vocab": vocab, "mode": mode, "arm": arm,
                                 "acc@1": r["acc@1"], "acc@5": r["acc@5"], "acc@25": r["acc@25"],
                                 "evaluated": r["evaluated"]})
                print(json.dumps(accuracy[-1]), file=sys.stderr)

    names = hpo_names(args.names)
    speed = {}
    for batch_size, count in [(128, len(names)), (1, min(len(names), 1000))]:
        for precision in ["f32", "int8"]:
            speed[(batch_size, precision)] = 0.0
        for _ in range(3):
            for precision in ["f32", "int8"]:
                rate = embed_rate(args.medlink, names[:count], precision, batch_size)
                speed[(batch_size, precision)] = max(speed[(batch_size, precision)], rate)
        print(json.dumps({f"batch {b} {p}": v for (b, p), v in speed.items()}), file=sys.stderr)

    results_file.parent.mkdir(exist_ok=True)
    results_file.write_text(json.dumps(
        {"accuracy": accuracy, "names": len(names), "machine": cpu_name(),
         "speed": [{"batch_size": b, "precision": p, "strings_per_s": v} for (b, p), v in speed.items()]},
        indent=1))
    if args.write:
        replace_block("INT8_ENCODER", render(accuracy, speed, len(names), cpu_name()))


def render(accuracy, speed, names, machine):
    f32 = {(r["corpus"], r["mode"]): r for r in accuracy if r["arm"] == "f32"}
    lines = [
        f"Machine: {machine}, 2 cores. `python3 benches/python/int8_encoder.py --write`: raw protocol, "
        "concept-level top-k; Δ = acc@1 minus f32's, in points (the bound for turning int8 on by default "
        "is 0.3).",
        "",
        "| corpus (dictionary) | signals | encoder | acc@1 | Δ acc@1 | acc@5 | acc@25 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in accuracy:
        delta = 100 * (r["acc@1"] - f32[(r["corpus"], r["mode"])]["acc@1"])
        lines.append(f"| {r['corpus']} ({r['vocab']}, {r['evaluated']:,} mentions) | {r['mode']} | {r['arm']} | "
                     f"{r['acc@1']:.4f} | {delta:+.2f} | {r['acc@5']:.4f} | {r['acc@25']:.4f} |")
    lines += [
        "",
        f"`medlink embed` on {names:,} HPO names (one string at a time: the first 1,000), best of three, "
        "2 worker threads:",
        "",
        "| strings per forward pass | f32 strings/s | int8 strings/s | int8 / f32 |",
        "|---|---|---|---|",
    ]
    for batch_size in [1, 128]:
        a, b = speed[(batch_size, "f32")], speed[(batch_size, "int8")]
        lines.append(f"| {batch_size} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
