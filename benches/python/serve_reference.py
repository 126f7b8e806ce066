"""The Python reference for `medlink serve`'s load test: FastAPI + sentence-transformers +
faiss, the same model directory and the same ontology file as the medlink index, the same
`POST /v1/link` request shape. Run by serve_benchmarks.py; loopback only.

Names are every non-obsolete HPO term's name and synonyms (what medlink's dictionary indexes),
embedded once and cached under target/; faiss HNSW (M 16, efConstruction 200, efSearch 128,
inner product on unit vectors) as medlink's defaults; candidates grouped by concept.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["fastapi", "uvicorn", "sentence-transformers", "faiss-cpu"])

import argparse  # noqa: E402
import hashlib  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def read_obo(path):
    """(concept id, preferred name, name) rows of the non-obsolete terms."""
    rows, term = [], None

    def flush():
        if term and term.get("id") and term.get("name") and not term.get("obsolete"):
            for name in [term["name"], *term["synonyms"]]:
                rows.append((term["id"], term["name"], name))

    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("["):
            flush()
            term = {"synonyms": []} if line == "[Term]" else None
        elif term is not None:
            if line.startswith("id: "):
                term["id"] = line[4:].strip()
            elif line.startswith("name: "):
                term["name"] = line[6:].strip()
            elif line.startswith("synonym: \""):
                term["synonyms"].append(line[10:].split("\"", 1)[0])
            elif line.startswith("is_obsolete: true"):
                term["obsolete"] = True
    flush()
    return rows


class Mention(BaseModel):
    mention: str


class LinkRequest(BaseModel):
    mentions: list[Mention]
    k: int = 5


def build_app(model_dir, obo, cache):
    import os

    import torch

    # OMP_NUM_THREADS (set by serve_benchmarks.py) decides torch's intra-op threads.
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model = SentenceTransformer(model_dir, device="cpu")
    rows = read_obo(obo)
    key = hashlib.sha256((model_dir + str(len(rows)) + Path(obo).read_text()[:100000]).encode()).hexdigest()[:16]
    vectors_path = Path(cache) / f"names-{key}.npy"
    if vectors_path.exists():
        vectors = np.load(vectors_path)
    else:
        vectors = model.encode([r[2] for r in rows], batch_size=256, normalize_embeddings=True,
                               convert_to_numpy=True).astype("float32")
        vectors_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(vectors_path, vectors)
    index = faiss.IndexHNSWFlat(vectors.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    index.add(vectors)
    index.hnsw.efSearch = 128
    app = FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    # A plain `def` handler: FastAPI runs it on its thread pool, the usual way to serve a
    # blocking model from FastAPI.
    @app.post("/v1/link")
    def link(request: LinkRequest):
        texts = [m.mention for m in request.mentions]
        q = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype("float32")
        scores, ids = index.search(q, 64)
        results = []
        for srow, irow in zip(scores, ids):
            best = {}
            for s, i in zip(srow, irow):
                if i < 0:
                    continue
                cid, name, matched = rows[i]
                if cid not in best or s > best[cid]["score"]:
                    best[cid] = {"id": cid, "name": name, "score": float(s), "matched_name": matched}
            ranked = sorted(best.values(), key=lambda c: -c["score"])[: request.k]
            results.append({"candidates": ranked})
        return {"results": results}

    return app, len(rows)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--obo", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cache", default=str(refenv.ROOT / "target" / "serve-reference"))
    args = p.parse_args()
    app, n = build_app(args.model, args.obo, args.cache)
    print(f"reference: {n} names; serving on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
