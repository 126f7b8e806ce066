"""Builds tests/fixtures/tagger-tiny: a tiny RANDOM BertForTokenClassification made with
transformers, and what transformers computes with it, for medlink's tagger parity tests.

    python3 benches/python/make_tagger_fixture.py

Writes (all small, well under 1 MB):
- model files: config.json (id2label / label2id), weights.json (the seeded recipe of the
  weights, see seeded_weights.py: `bert.` prefix and `classifier.*`, as transformers saves
  them; no binary weights are committed), tokenizer.json, tokenizer_config.json
  (model_max_length 24, so the long text needs several windows);
- expected.json: for each fixed text, the logits of every window (the fast tokenizer's
  overflowing windows with STRIDE) and the entities of
  `pipeline("token-classification", aggregation_strategy=S, stride=STRIDE)` for S in simple,
  first, average, max, plus `none` (no stride: transformers refuses stride with none) for the
  texts that fit in one window.

The vocabulary is a WordPiece vocabulary trained on a few sentences, accented and non-ASCII
letters included; characters outside it become [UNK]. The classifier is drawn wide and its bias
around 0.3 so that the random model tags plenty of B-/I- tokens.
"""
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["torch", "transformers", "safetensors"])

import seeded_weights  # noqa: E402

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForTokenClassification,
    BertTokenizerFast,
    pipeline,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "tagger-tiny"
STRIDE = 6
MAX_LENGTH = 24
LABELS = ["O", "B-Disease", "I-Disease", "B-Chemical", "I-Chemical"]

CORPUS = [
    "The patient has a severe headache and fever after taking ibuprofen.",
    "Breast cancer and lung cancer were treated with cisplatin and paclitaxel.",
    "Acetaminophen induced hepatotoxicity in rats; naloxone reversed the hypotension.",
    "Müller's naïve café patient: señora Ødegård had α-thalassemia and Straße fever.",
    "Le patient présente une céphalée sévère et une fièvre après l'ibuprofène.",
    "El paciente tenía diabetes mellitus y hipertensión arterial; recibió metformina.",
    "Der Patient hatte Kopfschmerzen, Übelkeit und Fieber nach Aspirin.",
    "Il paziente è affetto da cardiomiopatia dilatativa e insufficienza renale.",
    "Seizures, macrocephaly and hypotonia were reported in the proband and her brother.",
]

TEXTS = [
    "The patient has a severe headache and fever after taking ibuprofen.",
    "Müller's naïve café patient: señora Ødegård had α-thalassemia and Straße fever.",
    "Patient 患者 reported ☃ pain — Übelkeit, «fièvre» and cisplatin-induced nephrotoxicity.",
    "hypotension",
    "Ødegård's café: α-fièvre, Straße ☃ 患者.",
    # Longer than the 24-token window: tagged in overlapping windows.
    "Breast cancer and lung cancer were treated with cisplatin and paclitaxel. Acetaminophen "
    "induced hepatotoxicity in rats; naloxone reversed the hypotension. Der Patient hatte "
    "Kopfschmerzen, Übelkeit und Fieber nach Aspirin. Seizures, macrocephaly and hypotonia "
    "were reported in the proband and her brother.",
]


def build_tokenizer():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # BERT's uncased normalizer (accents stripped), which is also what transformers rebuilds
    # from tokenizer_config.json when it loads the directory: the saved tokenizer.json and
    # transformers' tokenizer then agree.
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    )
    # Leave out the CJK and symbol characters of TEXTS so they become [UNK].
    tok.train_from_iterator(CORPUS, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def spread_of(name):
    """(center, spread) of a weight: LayerNorm scales around 1, the classifier wide (weights
    +-1.4, biases around 0.3) so the random model tags plenty of B-/I- tokens, the rest
    around 0 (standard deviation 0.02, transformers' init)."""
    if name.endswith("LayerNorm.weight"):
        return (1.0, 0.0)
    if name == "classifier.weight":
        return (0.0, 1.4)
    if name == "classifier.bias":
        return (0.3, 0.5)
    if name.endswith("LayerNorm.bias") or name.endswith(".bias"):
        return (0.0, 0.0)
    return (0.0, 0.035)


def main():
    # The full directory is built under target/; the fixture keeps everything but the weights.
    out = ROOT / "target" / "fixture-build" / "tagger-tiny"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fast = BertTokenizerFast(tokenizer_object=build_tokenizer(), model_max_length=MAX_LENGTH)
    config = BertConfig(
        vocab_size=fast.backend_tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)},
    )
    model = BertForTokenClassification(config).eval()
    manifest = seeded_weights.fill(model, spread_of)
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    seeded_weights.check_saved(out, manifest)
    # What users get: the directory as transformers loads it.
    model = AutoModelForTokenClassification.from_pretrained(out).eval()
    fast = AutoTokenizer.from_pretrained(out)
    on_disk = Tokenizer.from_file(str(out / "tokenizer.json"))
    for text in TEXTS:
        assert fast(text)["input_ids"] == on_disk.encode(text).ids, f"tokenizers disagree on {text!r}"

    expected = {"stride": STRIDE, "max_length": MAX_LENGTH, "texts": []}
    pipes = {
        s: pipeline("token-classification", model=model, tokenizer=fast, aggregation_strategy=s)
        for s in ["none", "simple", "first", "average", "max"]
    }
    for text in TEXTS:
        enc = fast(text, truncation=True, stride=STRIDE, return_overflowing_tokens=True,
                   padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        windows = []
        for w in range(enc["input_ids"].shape[0]):
            n = int(enc["attention_mask"][w].sum())
            windows.append({
                "ids": enc["input_ids"][w][:n].tolist(),
                "logits": [[round(float(x), 7) for x in row] for row in logits[w][:n]],
            })
        entities = {}
        for s, pipe in pipes.items():
            if s == "none":
                if len(windows) > 1:
                    continue
                found = pipe(text)
            else:
                found = pipe(text, stride=STRIDE)
            entities[s] = [
                {
                    "entity_group": e.get("entity_group", e.get("entity")),
                    "score": float(e["score"]),
                    "word": e["word"],
                    "start": int(e["start"]),
                    "end": int(e["end"]),
                }
                for e in found
            ]
        expected["texts"].append({"text": text, "windows": windows, "entities": entities})
        counts = {s: len(v) for s, v in entities.items()}
        print(f"{len(windows)} window(s), entities {counts}: {text[:50]!r}", file=sys.stderr)
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")
    seeded_weights.publish(out, OUT, manifest)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
