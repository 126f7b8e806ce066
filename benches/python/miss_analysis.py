#!/usr/bin/env python3
"""What the misses of a BioSyn-protocol run are: the MISSES block of BENCHMARKS.md.

    python3 benches/python/miss_analysis.py --model "all-MiniLM-L6-v2 (base)=DIR" \
        [--model "long run=target/train/long/best"] [--mode dense] [--write]

For every model, links NCBI-disease test (MEDIC 2012 + NCBI train and dev mentions) and BC5CDR
dev disease (CTD 2017 + BC5CDR train mentions) under the BioSyn protocol (`medlink eval link
--protocol biosyn --json --misses N`, every miss listed) and sorts each wrong top-1 answer into
one class, first match wins:

- "same text, other concept": the top name is the mention's own normalised text, given to
  another concept (a training mention annotated otherwise, or one name shared by two concepts).
  Similarity cannot fix these; only context could.
- "gold broader" / "gold narrower": the gold concept is an ancestor / descendant of the answer
  in the CTD 2017 disease hierarchy ("skin lesion" answered with Skin Abnormalities, gold Skin
  Diseases) — the annotators' granularity.
- "sibling": answer and gold share a parent.
- "other, gold at 2-5 / 6-25 / not in top 25": the rest, by where the gold concept ranked.

The hierarchy is CTD 2017's (MeSH and OMIM ids, the ids of both corpora). The point of the table
is to say how far similarity alone can go, and where the remaining misses are.
"""
import argparse
import collections
import gzip
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block  # noqa: E402
from train_benchmarks import RUNS, SHARED, ensure_index, medlink  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CTD = SHARED / "vocab/ctd_medic_2017/CTD_diseases.tsv.gz"
CLASSES = [
    "same text, other concept",
    "gold broader",
    "gold narrower",
    "sibling",
    "other, gold at 2-5",
    "other, gold at 6-25",
    "other, gold not in top 25",
]


def hierarchy():
    """Parent ids of every CTD 2017 disease (column ParentIDs)."""
    parents = {}
    with gzip.open(CTD, "rt") as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            parents[cols[1]] = [p for p in cols[4].split("|") if p]
    return parents


def ancestors(parents, concept):
    seen, stack = set(), list(parents.get(concept, []))
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(parents.get(p, []))
    return seen


def with_prefix(concept):
    """Corpus ids come as `D012345` or `MESH:D012345`; CTD's carry the prefix."""
    if concept.startswith(("MESH:", "OMIM:")):
        return concept
    return f"OMIM:{concept}" if concept.isdigit() else f"MESH:{concept}"


def normalise(text):
    """The BioSyn protocol's normal form: lowercase, punctuation as spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def classify(miss, parents):
    predicted = with_prefix(miss["predicted"] or "")
    gold = [with_prefix(g) for g in miss["gold"]]
    if miss["predicted_name"] and normalise(miss["predicted_name"]) == normalise(miss["linked_text"]):
        return CLASSES[0]
    if any(g in ancestors(parents, predicted) for g in gold):
        return CLASSES[1]
    if any(predicted in ancestors(parents, g) for g in gold):
        return CLASSES[2]
    if any(set(parents.get(predicted, [])) & set(parents.get(g, [])) for g in gold):
        return CLASSES[3]
    rank = miss["gold_rank"]
    if rank is not None and rank <= 5:
        return CLASSES[4]
    return CLASSES[5] if rank is not None and rank <= 25 else CLASSES[6]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=DIR")
    ap.add_argument("--mode", default="dense", choices=["dense", "hybrid", "lexical"])
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    parents = hierarchy()
    rows = []
    for spec in args.model:
        label, _, model_dir = spec.partition("=")
        for corpus_label, corpus, vocab, types, _ in RUNS:
            if types == "Chemical":
                # The classes read CTD's disease hierarchy; MeSH's labels file has none.
                continue
            index = ensure_index(args.medlink, vocab, model_dir, biosyn=True)
            cmd = ["eval", "link", "--index", str(index), "--corpus", corpus, "--mode", args.mode,
                   "--protocol", "biosyn", "--misses", "100000", "--json"]
            if types:
                cmd += ["--entity-types", types]
            report = json.loads(medlink(args.medlink, *cmd))
            counts = collections.Counter(classify(m, parents) for m in report["worst_misses"])
            rows.append((label, corpus_label, report, counts))
            print(f"{label:30} {corpus_label:22} acc@1 {report['acc@1']:.4f} misses "
                  f"{len(report['worst_misses'])}: {dict(counts)}", file=sys.stderr)
    header = ("| model | corpus | acc@1 | misses | " + " | ".join(CLASSES) + " |\n|"
              + "---|" * (4 + len(CLASSES)))
    lines = []
    for label, corpus_label, report, counts in rows:
        evaluated = report["evaluated"]
        cells = [f"{counts[c]} ({counts[c] / evaluated:.1%})" for c in CLASSES]
        lines.append(f"| {label} | {corpus_label} | {report['acc@1']:.3f} | "
                     f"{sum(counts.values())} | " + " | ".join(cells) + " |")
    body = (f"Machine: {cpu_name()}. `python3 benches/python/miss_analysis.py --mode {args.mode} --write`: "
            f"BioSyn protocol, {args.mode}, misses as a share of the evaluated mentions.\n\n"
            + header + "\n" + "\n".join(lines))
    print(body)
    if args.write:
        replace_block("MISSES", body)


if __name__ == "__main__":
    main()
