"""Checks that a tagger checkpoint written by `medlink train tagger` loads in transformers as a
`BertForTokenClassification`, with every weight used and none missing, and that transformers'
pipeline and medlink's tagger find the same entities on the same texts.

    python3 benches/python/check_tagger_checkpoint.py target/runs/bc5cdr/best [TEXTS.txt]

medlink's side runs `cargo run --release --example tag_throughput` (first aggregation, the
pipeline's window and a stride of 32 tokens on both sides). Exits non-zero on any difference
beyond 1e-4 in a score.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["torch", "transformers", "safetensors"])

from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STRIDE = 32
TEXTS = [
    "Naloxone reverses the antihypertensive effect of clonidine in spontaneously hypertensive rats.",
    "Cisplatin-induced nephrotoxicity and ototoxicity were observed; Müller's patient had no fever.",
    "The patient developed severe hepatotoxicity after acetaminophen overdose and was treated with N-acetylcysteine.",
]


def main():
    model_dir = Path(sys.argv[1])
    texts = TEXTS
    if len(sys.argv) > 2:
        texts = Path(sys.argv[2]).read_text(encoding="utf-8").splitlines()
    model, info = AutoModelForTokenClassification.from_pretrained(model_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{model_dir}: transformers reports {problems}")
    print(f"loaded {type(model).__name__} with labels {model.config.id2label}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pipe = pipeline("token-classification", model=model.eval(), tokenizer=tokenizer, aggregation_strategy="first")
    want = [pipe(t, stride=STRIDE) for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.txt"
        texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        out = Path(tmp) / "entities.jsonl"
        subprocess.run(
            ["cargo", "run", "--release", "-q", "--example", "tag_throughput", "--", str(model_dir),
             str(texts_file), "--stride", str(STRIDE), "--threads", "1",
             "--max-length", str(min(tokenizer.model_max_length, model.config.max_position_embeddings)),
             "--entities", str(out)],
            check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    bad = 0
    for text, w, g in zip(texts, want, got):
        key = lambda e: (e["start"], e["end"], e["entity_group"])  # noqa: E731
        if [key(e) for e in w] != [key(e) for e in g] or any(
            abs(float(a["score"]) - b["score"]) > 1e-4 for a, b in zip(w, g)
        ):
            bad += 1
            print(f"DIFFERENT on {text[:60]!r}:\n  transformers {[key(e) for e in w]}\n  medlink      {[key(e) for e in g]}")
    n = sum(len(w) for w in want)
    print(f"{len(texts) - bad}/{len(texts)} texts identical ({n} entities from transformers)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
