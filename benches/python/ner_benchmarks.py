#!/usr/bin/env python3
"""End-to-end concept recognition (`medlink eval e2e`) on the corpora of BENCHMARKS.md.

    cargo build --release && python3 benches/python/ner_benchmarks.py [--tagger LABEL=DIR ...] [--write]

For each corpus, scores the dictionary matcher (`--ner dictionary`, the default), and for every
`--tagger` given a trained tagger alone (`--ner tagger`) and tagger + dictionary (`--ner both`).
Indexes come from benchmarks.py's cache (target/bench-indexes/, built on first use). Rows:
span F1 (types ignored), linked-mention F1 (span + top concept, strict), document concept-set
F1 (the BC5CDR DNER measure), documents/s (one `eval e2e` run: annotation only, index and model
already loaded). With --write, the table replaces the E2E block of BENCHMARKS.md.
"""
import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks import BC5CDR, SHARED, ensure_index, medlink  # noqa: E402
from benchmarks_md import cpu_name, replace_block  # noqa: E402

GSC = f"phenotagger:{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_gold.tsv'},{SHARED / 'hpo/gsc_plus_dev/GSCplus_dev_input.PubTator'}"
CDR_DEV = f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}"

# label, corpus, index name (None: the default HPO index), extra flags, tagger entity type
# routed to this index, published anchor. No HPO-annotated training corpus is here: on GSC+ a
# disease tagger runs out of domain (phenotypes named like diseases), a generalisation check.
RUNS = [
    ("GSC+ dev (HPO)", GSC, None, ["--label", "HPO=Disease"], "Disease", "PhenoTagger 0.759 mention F1 (GSC+ test)"),
    ("BC5CDR dev, disease (CTD 2017)", CDR_DEV + "#types=Disease", "ctd2017", ["--label", "CTD=Disease"], "Disease",
     "DNorm 0.806 document concept F1 (test)"),
    ("BC5CDR dev, disease (CTD 2017 + train mentions)", CDR_DEV + "#types=Disease", "ctd2017+bc5cdr-train",
     ["--label", "CTD=Disease"], "Disease", "DNorm 0.806 document concept F1 (test)"),
    ("BC5CDR dev, chemical (MeSH labels)", CDR_DEV + "#types=Chemical", "mesh", ["--label", "MESH=Chemical"], "Chemical",
     "tmChem 0.904 mention F1 (test)"),
]



def tagger_types(path):
    """Entity types a token-classification checkpoint tags (from config.json's id2label)."""
    labels = json.loads((Path(path) / "config.json").read_text())["id2label"].values()
    return {label[2:] for label in labels if label[:2] in ("B-", "I-")}


def run(binary, corpus, index, extra):
    args = ["eval", "e2e", "--json", "--corpus", corpus, *extra]
    if index is not None:
        args += ["--index", str(ensure_index(binary, index))]
    return json.loads(medlink(binary, *args))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--medlink", default=str(Path(__file__).resolve().parents[2] / "target/release/medlink"))
    parser.add_argument("--tagger", action="append", default=[], metavar="LABEL=DIR",
                        help="a trained tagger directory; adds tagger and tagger + dictionary rows")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    taggers = [t.split("=", 1) for t in args.tagger]
    rows = []
    for label, corpus, index, extra, tagger_type, anchor in RUNS:
        configs = [("dictionary", extra)]
        for name, path in taggers:
            if tagger_type not in tagger_types(path):
                continue
            tag = ["--tagger", path, "--mention-type", tagger_type]
            configs += [(f"tagger {name}", ["--ner", "tagger", *tag]),
                        (f"tagger {name} + dictionary", ["--ner", "both", *extra, *tag])]
        for detector, flags in configs:
            r = run(args.medlink, corpus, index, flags)
            rows.append((label, detector, r, anchor))
            print(f"{label:50} {detector:30} spans {r['spans']['strict']['overall']['f1']:.3f} "
                  f"mentions {r['mentions_strict']['f1']:.3f} documents {r['document_concepts']['f1']:.3f} "
                  f"{r.get('documents_per_second', 0):.0f} docs/s", file=sys.stderr)
    lines = [f"Machine: {cpu_name()}, {platform.machine()}. Command: `python3 benches/python/ner_benchmarks.py"
             + "".join(f" --tagger {t}" for t in args.tagger) + " --write`.", "",
             "| corpus (index) | detector | span P / R / F1 | linked mention P / R / F1 (strict) | document concept P / R / F1 | documents/s | published |",
             "|---|---|---|---|---|---|---|"]

    def prf(p):
        return f"{p['precision']:.3f} / {p['recall']:.3f} / **{p['f1']:.3f}**"

    for label, detector, r, anchor in rows:
        lines.append(f"| {label} | {detector} | {prf(r['spans']['strict']['overall'])} | {prf(r['mentions_strict'])} | "
                     f"{prf(r['document_concepts'])} | {r.get('documents_per_second', 0):.0f} | {anchor} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_block("E2E", table)


if __name__ == "__main__":
    main()
