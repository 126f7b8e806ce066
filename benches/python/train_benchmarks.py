#!/usr/bin/env python3
"""Regenerates the TRAINING block of BENCHMARKS.md: trained encoders beside the base model.

    python3 benches/python/train_benchmarks.py --model "all-MiniLM-L6-v2 (base)=DIR" \
        --model "medlink trainer, 20 min=target/train/medlink/best" \
        --model "PyTorch reference, 20 min=target/train/torch" [--write]

For every model: builds (once, cached under target/bench-indexes/<vocabulary>-<weights hash>)
the MEDIC 2012 and CTD 2017 indexes, then runs `medlink eval link --json` on NCBI-disease test
(MEDIC 2012) and BC5CDR dev disease (CTD 2017), dense-only and hybrid with in-document
abbreviations. Training facts (steps, seconds per step, pairs/s) come from the model
directory's trainer_state.json (medlink) or train_log.json (PyTorch reference). Prints the
Markdown table; with --write, replaces the block between the TRAINING markers (or --block's).
--biosyn adds BioSyn-protocol rows (indexes with the training mentions added).
"""
import argparse
import hashlib
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

VOCABULARIES = {
    "medic2012": f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
    "ctd2017": f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}",
    "mesh": f"mesh:{SHARED / 'vocab/mesh/mesh_descriptors_2026-01-27_labels.csv'}",
}
RUNS = [
    ("NCBI-disease test", f"pubtator:{SHARED / 'ncbi_disease/NCBItestset_corpus.txt'}", "medic2012", "",
     "SapBERT 92.0 / 95.6; BioSyn 91.1 / 93.9"),
    ("BC5CDR dev, disease", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}", "ctd2017", "Disease",
     "SapBERT 93.5 / 96.0; BioSyn 93.2 / 96.0 (test split)"),
    ("BC5CDR dev, chemical", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}", "mesh", "Chemical",
     "SapBERT 96.5 / 98.2; BioSyn 96.6 / 97.2 (test split, full MeSH)"),
]
# The BioSyn protocol's dictionary: training mention strings added (`index build --add-mentions`).
ADDED_MENTIONS = {
    "medic2012": ("ncbi-traindev", [f"pubtator:{SHARED / 'ncbi_disease/NCBItrainset_corpus.txt'}",
                                    f"pubtator:{SHARED / 'ncbi_disease/NCBIdevelopset_corpus.txt'}"]),
    "ctd2017": ("bc5cdr-train", [f"pubtator:{SHARED / 'bc5cdr/CDR_TrainingSet.PubTator.txt'}#types=Disease"]),
    "mesh": ("bc5cdr-train", [f"pubtator:{SHARED / 'bc5cdr/CDR_TrainingSet.PubTator.txt'}#types=Chemical"]),
}


def medlink(binary, *args):
    env = dict(os.environ, MEDLINK_CACHE=str(CACHE))
    p = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"medlink {' '.join(args)} failed:\n{p.stderr}")
    return p.stdout


def weights_hash(model_dir):
    h = hashlib.sha256()
    with open(Path(model_dir) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def ensure_index(binary, vocab, model_dir, biosyn=False):
    added, corpora = ADDED_MENTIONS[vocab] if biosyn else ("", [])
    out = INDEXES / f"{vocab}{'+' + added if added else ''}-{weights_hash(model_dir)}"
    # One built by an older binary would report that binary's index code, so it is rebuilt.
    if stale_index(out, binary):
        print(f"building {out.name} ...", file=sys.stderr)
        extra = [a for c in corpora for a in ("--add-mentions", c)]
        medlink(binary, "index", "build", "--ontology", VOCABULARIES[vocab], "--model", str(model_dir),
                *extra, "--out", str(out))
    return out


def training_facts(model_dir):
    d = Path(model_dir)
    for state_file in [d / "trainer_state.json", d.parent / "last" / "trainer_state.json"]:
        if state_file.exists():
            s = json.loads(state_file.read_text())
            h = s["history"]
            seconds = h[-1]["seconds"] if h else 0.0
            pairs = s["step"] * s["options"]["batch_pairs"] * s["options"]["accumulation"]
            return f"{s['step']} steps, {seconds / 60:.0f} min, {seconds / max(1, s['step']):.2f} s/step, {pairs / max(seconds, 1e-9):.1f} pairs/s"
    log = d / "train_log.json"
    if log.exists():
        s = json.loads(log.read_text())
        return f"{s['steps']} steps, {s['seconds'] / 60:.0f} min, {s['seconds_per_step']:.2f} s/step, {s['pairs_per_second']:.1f} pairs/s"
    return "not trained here"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="LABEL=DIR")
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--biosyn", action="store_true",
                    help="also the BioSyn protocol (name-level, training mentions in the dictionary)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--block", default="TRAINING", help="the BENCHMARKS.md block --write replaces")
    args = ap.parse_args()

    lines = [
        "| model | training | corpus (dictionary) | signals | acc@1 | acc@5 | acc@25 | published acc@1 / acc@5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in args.model:
        label, model_dir = spec.split("=", 1)
        facts = training_facts(model_dir)
        for corpus_label, corpus, vocab, types, anchor in RUNS:
            settings = [("dense", False, False), ("hybrid", True, False)]
            if args.biosyn:
                settings += [("dense", False, True), ("hybrid", False, True)]
            for mode, abbrev, biosyn in settings:
                index = ensure_index(args.medlink, vocab, model_dir, biosyn)
                cmd = ["eval", "link", "--index", str(index), "--corpus", corpus, "--mode", mode,
                       "--ks", "1,5,25", "--json"]
                if types:
                    cmd += ["--entity-types", types]
                if abbrev:
                    cmd.append("--abbreviations")
                if biosyn:
                    cmd += ["--protocol", "biosyn"]
                r = json.loads(medlink(args.medlink, *cmd))
                signals = mode + (" + abbreviations" if abbrev else "") + (", BioSyn protocol" if biosyn else "")
                print(f"{label:36} {corpus_label:22} {signals:24} acc@1 {r['acc@1']:.3f} acc@5 {r['acc@5']:.3f} "
                      f"acc@25 {r['acc@25']:.3f}", file=sys.stderr)
                dictionary = vocab + (f"+{ADDED_MENTIONS[vocab][0]}" if biosyn else "")
                lines.append(f"| {label} | {facts} | {corpus_label} ({dictionary}) | {signals} | {r['acc@1']:.3f} | "
                             f"{r['acc@5']:.3f} | {r['acc@25']:.3f} | {anchor} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_block(args.block, table)


if __name__ == "__main__":
    main()
