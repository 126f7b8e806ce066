"""How many candidate names linking needs: acc@k and speed against `--candidates`.

    cargo build --release && python3 benches/python/pool_size.py --write

The linker takes `--candidates` names from each of HNSW and tantivy (tantivy re-scores
four times as many by 3-gram cosine first), scores their union on both signals and groups it
by concept. Fewer candidates cost less per mention; too few lose the gold concept. This runs
`medlink eval link` (hybrid, raw protocol, k 10) at each pool size on the development splits
(NCBI-disease dev with MEDIC 2012, BC5CDR dev disease with CTD 2017: where the default is
chosen) and on NCBI-disease test (reported, not tuned on), and `medlink link` over the same
BC5CDR dev mentions for mentions/s, median of three. The indexes are int8_encoder.py's f32
ones (built here if missing). With --write, replaces BENCHMARKS.md's POOL_SIZE block.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block, stale_index, throughput  # noqa: E402
from vector_types import ROOT, SHARED, VOCABULARIES  # noqa: E402

SIZES = [20, 32, 48, 64, 96, 128]
K = 10
CORPORA = [
    ("NCBI-disease dev", f"pubtator:{SHARED / 'ncbi_disease/NCBIdevelopset_corpus.txt'}", "MEDIC 2012"),
    ("BC5CDR dev disease", f"pubtator:{SHARED / 'bc5cdr/CDR_DevelopmentSet.PubTator.txt'}#types=Disease", "CTD 2017"),
    ("NCBI-disease test", f"pubtator:{SHARED / 'ncbi_disease/NCBItestset_corpus.txt'}", "MEDIC 2012"),
]
SPEED_CORPUS = 1  # BC5CDR dev: the most mentions


def index_dir(work, vocab):
    return work / f"{vocab.replace(' ', '-')}-f32"


def mentions_of(corpus):
    """The corpus's mention texts (of the corpus's types), in order, read from its PubTator lines."""
    pubtator = Path(corpus.split(":", 1)[1].split("#")[0])
    types = corpus.split("#types=")[1].split("+") if "#types=" in corpus else None
    texts = []
    for line in pubtator.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 6 and parts[1].isdigit() and (types is None or parts[4] in types):
            texts.append(parts[3])
    return texts


def link_rate(medlink, index, mentions_file, candidates):
    with open(mentions_file, encoding="utf-8") as stdin:
        out = subprocess.run([medlink, "link", "--index", str(index), "-k", str(K), "--mention-cache", "0",
                              "--candidates", str(candidates)],
                             stdin=stdin, capture_output=True, text=True, check=True)
    return throughput(out.stderr, "mentions/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--work", default=str(ROOT / "target/int8-encoder"))
    ap.add_argument("--write", action="store_true", help="replace BENCHMARKS.md's POOL_SIZE block")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for vocab, spec in VOCABULARIES.items():
        if stale_index(index_dir(work, vocab), args.medlink):
            subprocess.run([args.medlink, "index", "build", "--ontology", spec, "--out", str(index_dir(work, vocab))],
                           check=True)

    accuracy = {}
    for label, corpus, vocab in CORPORA:
        for size in SIZES:
            out = subprocess.run([args.medlink, "eval", "link", "--index", str(index_dir(work, vocab)),
                                  "--corpus", corpus, "-k", str(K), "--ks", "1,5,10", "--candidates", str(size),
                                  "--json"], capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            accuracy[(label, size)] = (r["acc@1"], r["acc@5"], r["acc@10"], r["evaluated"])
            print(label, size, accuracy[(label, size)], flush=True)

    label, corpus, vocab = CORPORA[SPEED_CORPUS]
    mentions_file = work / "pool-size-mentions.txt"
    mentions = mentions_of(corpus)
    mentions_file.write_text("".join(json.dumps({"mention": m}) + "\n" for m in mentions), encoding="utf-8")
    runs = {size: [] for size in SIZES}
    for _ in range(3):  # sizes alternate, so a neighbour's load falls on all of them alike
        for size in SIZES:
            runs[size].append(link_rate(args.medlink, index_dir(work, vocab), mentions_file, size))
    speed = {size: statistics.median(r) for size, r in runs.items()}
    print("speed", speed, flush=True)

    header = "| candidates | " + " | ".join(f"{c[0]} acc@1 / @5 / @10" for c in CORPORA) + \
        f" | `link` mentions/s ({len(mentions):,} {label} mentions) |"
    rows = [header, "|" + "---|" * (len(CORPORA) + 2)]
    for size in SIZES:
        cells = [f"{a1:.3f} / {a5:.3f} / {a10:.3f}" for a1, a5, a10, _ in (accuracy[(c[0], size)] for c in CORPORA)]
        bold = "**" if size == 64 else ""
        rows.append(f"| {bold}{size}{bold} | " + " | ".join(cells) + f" | {speed[size]:.0f} |")
    body = "\n".join(rows) + (
        f"\n\nMachine: {cpu_name()}, {os.cpu_count()} cores. Hybrid, raw protocol, k {K} (so at least {2 * K} candidates), "
        f"f32 encoder, indexes of int8_encoder.py; mentions evaluated: "
        + ", ".join(f"{c[0]} {accuracy[(c[0], SIZES[0])][3]}" for c in CORPORA)
        + ". mentions/s: `medlink link --mention-cache 0`, median of three, sizes alternating. "
        "Bold: the default.")
    print(body)
    results = ROOT / "benches/results/pool_size.json"
    results.write_text(json.dumps({"machine": cpu_name(), "k": K, "speed": speed,
                                   "accuracy": [{"corpus": c, "candidates": s, "acc@1": v[0], "acc@5": v[1],
                                                 "acc@10": v[2], "evaluated": v[3]}
                                                for (c, s), v in accuracy.items()]}, indent=1) + "\n")
    if args.write:
        replace_block("POOL_SIZE", body)


if __name__ == "__main__":
    main()
