"""medlink's dense linking beside a plain sentence-transformers script on NCBI-disease test:
the same model, the same MEDIC 2012 names, exact inner-product search, top concept = the
concept of the best name. Explains where the two differ.

    cargo build --release && python3 benches/python/dense_reference.py --index DIR

DIR is a MEDIC 2012 index built with the default model (e.g. the tests' cached
target/medlink-cache/test-indexes/medic2012, or `medlink index build --ontology medic:...`).
Mentions with one gold id are scored (composites are left out on both sides). The reference
runs twice: with sentence-transformers' own max_seq_length (256) and with medlink's 25 tokens.
Prints acc@1 of each and the mentions where medlink and the reference disagree.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["torch", "sentence-transformers"])

import numpy as np  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
MEDLINK = ROOT / "target" / "release" / "medlink"
MODEL = ROOT / "target" / "medlink-cache" / "models" / "all-MiniLM-L6-v2"


def norm_id(raw):
    raw = raw.strip()
    if raw.startswith(("MESH:", "OMIM:")):
        return raw
    return f"MESH:{raw}" if raw[:1] in ("C", "D") else f"OMIM:{raw}"


def medic_names(path):
    """[(name, concept)] with every id of a row mapped to its first (MeSH) id."""
    names, alias = [], {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        ids, _, rest = line.partition("||")
        ids = [norm_id(i) for i in ids.split("|") if i]
        for i in ids:
            alias[i] = ids[0]
        for name in rest.split("|"):
            if name:
                names.append((name, ids[0]))
    return names, alias


def mentions(path):
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) == 6 and "|" not in cols[5] and "+" not in cols[5] and cols[5] != "-1":
            out.append((cols[3], norm_id(cols[5])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    args = ap.parse_args()
    names, alias = medic_names(SHARED / "vocab/medic_2012/medic_06Jul2012.txt")
    items = mentions(SHARED / "ncbi_disease/NCBItestset_corpus.txt")
    gold = [alias.get(g, g) for _, g in items]

    lines = "".join(json.dumps({"id": i, "mention": m}) + "\n" for i, (m, _) in enumerate(items))
    out = subprocess.run([str(MEDLINK), "link", "--index", args.index, "--mode", "dense", "-k", "1"],
                         input=lines, text=True, capture_output=True, check=True).stdout
    ours = {}
    for line in out.splitlines():
        r = json.loads(line)
        c = r.get("candidates") or [{}]
        ours[r["id"]] = (alias.get(c[0].get("id"), c[0].get("id")), c[0].get("matched_name"))

    model = SentenceTransformer(str(MODEL), device="cpu")
    texts = [n for n, _ in names]
    results = {"medlink": [ours[i][0] for i in range(len(items))]}
    tops = {}
    for length in (256, 25):
        model.max_seq_length = length
        vectors = model.encode(texts, batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
        queries = model.encode([m for m, _ in items], batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
        best = (queries @ vectors.T).argmax(axis=1)
        results[f"reference {length}"] = [names[b][1] for b in best]
        tops[length] = [names[b][0] for b in best]
    for label, predicted in results.items():
        acc = np.mean([p == g for p, g in zip(predicted, gold)])
        print(f"{label:16} acc@1 {acc:.4f} over {len(items)} single-id mentions")
    for length in (256, 25):
        ref = results[f"reference {length}"]
        only_ref = [i for i in range(len(items)) if ref[i] == gold[i] and results["medlink"][i] != gold[i]]
        only_ours = [i for i in range(len(items)) if ref[i] != gold[i] and results["medlink"][i] == gold[i]]
        print(f"\nreference {length}: right only there {len(only_ref)}, right only in medlink {len(only_ours)}")
        for i in only_ref[:15]:
            print(f"  {items[i][0]!r}: gold {gold[i]}; reference '{tops[length][i]}'; medlink {ours[i]}")
        print("  right only in medlink:")
        for i in only_ours[:15]:
            print(f"  {items[i][0]!r}: gold {gold[i]}; reference '{tops[length][i]}' {ref[i]}; medlink {ours[i]}")


if __name__ == "__main__":
    main()
