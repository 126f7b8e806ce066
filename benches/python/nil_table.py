"""NIL: answering "no concept" below a score threshold, chosen on a training split.

    cargo build --release && python3 benches/python/nil_table.py --write

BC5CDR marks mentions with no MeSH concept as `-1`, and a MeSH-descriptor dictionary lacks the
concepts of many chemical mentions: both are mentions no answer can be right for. For BC5CDR
disease (CTD 2017) and chemical (MeSH descriptors), `medlink eval link --json` (raw protocol,
hybrid, default weight) reports `nil_curve`; the threshold with the best accuracy (right answers
plus right abstentions) on the training split is applied to the dev split. With --write,
replaces BENCHMARKS.md's NIL block.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block, stale_index  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
BC5CDR = SHARED / "bc5cdr"
RUNS = [
    ("BC5CDR disease", "CTD-2017", f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}", "Disease"),
    ("BC5CDR chemical", "MeSH", f"mesh:{SHARED / 'vocab/mesh/mesh_descriptors_2026-01-27_labels.csv'}", "Chemical"),
]


def medlink(binary, *args):
    return subprocess.run([binary, *map(str, args)], check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/fusion"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows = []
    for label, name, ontology, entity in RUNS:
        index = Path(args.work) / name
        if stale_index(index, args.medlink):
            medlink(args.medlink, "index", "build", "--ontology", ontology, "--out", index)
        report = {}
        for split, file in [("train", "CDR_TrainingSet.PubTator.txt"), ("dev", "CDR_DevelopmentSet.PubTator.txt")]:
            report[split] = json.loads(medlink(args.medlink, "eval", "link", "--index", index, "--corpus",
                                               f"pubtator:{BC5CDR / file}#types={entity}", "--mode", "hybrid",
                                               "--ks", "1", "--json"))
        best = max(report["train"]["nil_curve"], key=lambda p: (p["accuracy"], -p["threshold"]))
        dev = {p["threshold"]: p for p in report["dev"]["nil_curve"]}
        rows.append({"label": label, "dictionary": name, "chosen": best["threshold"], "train": report["train"],
                     "dev": report["dev"], "dev_at_chosen": dev[best["threshold"]]})
        print(f"{label}: threshold {best['threshold']} (train accuracy {best['accuracy']:.4f})", file=sys.stderr)
    (ROOT / "benches/results").mkdir(exist_ok=True)
    (ROOT / "benches/results/nil.json").write_text(json.dumps(rows, indent=1))
    if args.write:
        replace_block("NIL", render(rows))


def render(rows):
    lines = [
        f"Machine: {cpu_name()}. `python3 benches/python/nil_table.py --write`: raw protocol, hybrid, "
        "alpha 0.6; a mention is answered when its top fused score reaches the threshold, else NIL. "
        "Precision and recall of the answers count right top-1 concepts; NIL recall is the share of "
        "unlinkable mentions left unanswered; accuracy counts right answers plus right abstentions. "
        "The threshold is chosen on the training split (best accuracy) and applied to dev "
        "(`medlink link --nil-threshold T`).",
        "",
        "| corpus (dictionary) | split | mentions | unlinkable | threshold | answered | precision | recall | NIL precision | NIL recall | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dev = r["dev"]
        shown = sorted({0.0, r["chosen"], 0.6, 0.7, 0.8, 0.9})
        for t in shown:
            p = next(q for q in dev["nil_curve"] if abs(q["threshold"] - t) < 1e-6)
            mark = " (chosen on train)" if abs(t - r["chosen"]) < 1e-6 else (" (always answer)" if t == 0 else "")
            lines.append(
                f"| {r['label']} ({r['dictionary']}) | dev | {dev['mentions']:,} | {dev['unlinkable']:,} | "
                f"{t:.2f}{mark} | {p['answered']:,} | {p['precision']:.4f} | {p['recall']:.4f} | "
                f"{p['nil_precision']:.4f} | {p['nil_recall']:.4f} | {p['accuracy']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
