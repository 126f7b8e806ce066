"""Builds tests/fixtures/roberta-tiny, tests/fixtures/xlm-roberta-tiny and
tests/fixtures/deberta-v2-tiny: tiny RANDOM RobertaForTokenClassification /
XLMRobertaForTokenClassification / DebertaV2ForTokenClassification checkpoints made with
transformers, and what transformers computes with them, for medlink's parity tests; and checks
that a checkpoint medlink trained from one loads in transformers with medlink's outputs.

    python3 benches/python/make_arch_fixtures.py                 # (re)write every fixture
    python3 benches/python/make_arch_fixtures.py check DIR       # an encoder checkpoint

(A tagger checkpoint of either architecture is checked by check_tagger_checkpoint.py.)

Each fixture (well under 1 MB) holds:
- config.json (`model_type` roberta / xlm-roberta, id2label, pad_token_id 1,
  max_position_embeddings 66: 64 usable positions after RoBERTa's padding offset),
  weights.json (the seeded recipe of every weight: see seeded_weights.py; no binary weights are
  committed, tests and scripts draw `model.safetensors` from it — `roberta.*` and
  `classifier.*`, as transformers saves them), tokenizer.json, tokenizer_config.json
  (model_max_length 64);
- expected.json: the texts, their token ids padded into one batch of mixed lengths with the
  tokenizer's pad id, the attention mask, and transformers' last hidden states (every position,
  padding included), L2-normalised CLS (`<s>`) and masked-mean embeddings, the
  token-classification logits, and the entities of transformers' token-classification
  pipeline (simple, first and max aggregation).

The DeBERTa-v2 fixture is configured as DeBERTa-v3 is (relative attention with `p2c|c2p`, log
position buckets, shared attention keys, LayerNorm on the relative embeddings, no absolute
positions, no token types, [CLS]/[SEP]/[PAD]=0 SentencePiece tokenizer), with fewer buckets
(8, max_relative_positions 16) so the padded batch's 30-60-token text reaches the log buckets
and the clamp at the span's ends, and an `embedding_size` (24) below `hidden_size` so the
`embed_proj` projection is exercised. Its expected.json also holds transformers'
`build_relative_position` matrix for the batch length (`relative_positions`).

RoBERTa's tokenizer is a byte-level BPE (every byte is in the alphabet: non-ASCII text splits
into byte tokens, never `<unk>`); XLM-R's is a SentencePiece-style Unigram with the Metaspace
pre-tokenizer (characters never seen in training become `<unk>`). Both are trained here on a few
sentences. Every weight is drawn uniformly around 0 (LayerNorm weights around 1), so LayerNorm
weights are not all ones, biases not all zeros, and the token-type row is not zero: a weight
loaded into the wrong place or left out changes the outputs.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["torch", "transformers", "safetensors"])

import seeded_weights  # noqa: E402

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DebertaV2Config,
    DebertaV2ForTokenClassification,
    PreTrainedTokenizerFast,
    RobertaConfig,
    pipeline,
    RobertaForTokenClassification,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
LABELS = ["O", "B-Disease", "I-Disease", "B-Chemical", "I-Chemical"]
MAX_LENGTH = 64
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as in roberta-base and xlm-roberta-base
DEBERTA_SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]  # ids 0..3, as in deberta-v3-base

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

# One padded batch of mixed lengths: a single word, non-ASCII (CJK and a snowman are unknown
# to the Unigram vocabulary), repeated spaces, and a text of 30 to 60 tokens.
TEXTS = [
    "fever",
    "The patient has a severe headache and fever after taking ibuprofen.",
    "Müller's naïve café: α-thalassemia, Straße 患者 ☃ fièvre",
    "  lung   cancer  ",
    "Breast cancer and lung cancer were treated with cisplatin; naloxone reversed the hypotension.",
    "Il paziente è affetto da cardiomiopatia dilatativa.",
]


def roberta_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIALS + ["<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(
        sep=("</s>", tok.token_to_id("</s>")),
        cls_token=("<s>", tok.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    return tok


def unigram_tokenizer(specials, cls, sep, unk, mask):
    """A SentencePiece-style Unigram tokenizer (NFKC, Metaspace) with `cls $A sep`."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=600,  # the trainer stops near 160 pieces on this corpus
        special_tokens=specials,
        unk_token=unk,
        show_progress=False,
    )
    # Leave the CJK and symbol characters of TEXTS out of training: they become unknown.
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([mask])
    s, e = tok.token_to_id(cls), tok.token_to_id(sep)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} {sep} $B {sep}",
        special_tokens=[(cls, s), (sep, e)],
    )
    return tok


def xlmr_tokenizer():
    return unigram_tokenizer(SPECIALS, "<s>", "</s>", "<unk>", "<mask>")


def deberta_tokenizer():
    # deberta-v3's SentencePiece vocabulary in tokenizer.json form: [CLS] $A [SEP].
    return unigram_tokenizer(DEBERTA_SPECIALS, "[CLS]", "[SEP]", "[UNK]", "[MASK]")


ROBERTA_TOKENS = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                      unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
ROBERTA_CONFIG = dict(max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1,
                      num_attention_heads=4, pad_token_id=1, bos_token_id=0, eos_token_id=2)
DEBERTA_TOKENS = dict(cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]", pad_token="[PAD]",
                      mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]")
# DeBERTa-v3's settings (microsoft/deberta-v3-base's config.json) at a tiny size.
DEBERTA_CONFIG = dict(
    max_position_embeddings=MAX_LENGTH, type_vocab_size=0, num_attention_heads=2,
    pad_token_id=0, bos_token_id=1, eos_token_id=2,
    relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8,
    max_relative_positions=16, position_biased_input=False, share_att_key=True,
    norm_rel_ebd="layer_norm", layer_norm_eps=1e-7, embedding_size=24,
)

# name: config class, model class, tokenizer, its special tokens (ids 0..3), special-token
# arguments of the fast tokenizer, config arguments.
ARCHITECTURES = {
    "roberta-tiny": (RobertaConfig, RobertaForTokenClassification, roberta_tokenizer,
                     SPECIALS, ROBERTA_TOKENS, ROBERTA_CONFIG),
    "xlm-roberta-tiny": (XLMRobertaConfig, XLMRobertaForTokenClassification, xlmr_tokenizer,
                         SPECIALS, ROBERTA_TOKENS, ROBERTA_CONFIG),
    "deberta-v2-tiny": (DebertaV2Config, DebertaV2ForTokenClassification, deberta_tokenizer,
                        DEBERTA_SPECIALS, DEBERTA_TOKENS, DEBERTA_CONFIG),
}


def rounded(tensor):
    return [[round(float(x), 7) for x in row] for row in tensor]


def pipeline_entities(model, tokenizer):
    """`pipeline("token-classification")` entities of each text, per aggregation strategy
    (where the tagger's word boundaries and character offsets show)."""
    out = {}
    for strategy in ["simple", "first", "max"]:
        pipe = pipeline("token-classification", model=model, tokenizer=tokenizer,
                        aggregation_strategy=strategy)
        out[strategy] = [
            [{"entity_group": e["entity_group"], "score": float(e["score"]), "word": e["word"],
              "start": int(e["start"]), "end": int(e["end"])} for e in pipe(text)]
            for text in TEXTS
        ]
    return out


def spread_of(name):
    """(center, spread) of a weight: LayerNorm scales around 1, everything else around 0
    (standard deviation 0.1, as transformers' init plus the noise these fixtures had)."""
    return (1.0, 0.17) if name.endswith(("LayerNorm.weight", "layer_norm.weight")) else (0.0, 0.17)


def build(name):
    config_class, model_class, make_tokenizer, specials, special_tokens, sizes = ARCHITECTURES[name]
    # The full directory is built under target/; the fixture keeps everything but the weights.
    out = ROOT / "target" / "fixture-build" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    torch.manual_seed(0)
    tok = make_tokenizer()
    assert [tok.token_to_id(t) for t in specials] == [0, 1, 2, 3], "special token ids"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=MAX_LENGTH, **special_tokens
    )
    config = config_class(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        **sizes,
        id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)},
    )
    model = model_class(config).eval()
    manifest = seeded_weights.fill(model, spread_of)
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    seeded_weights.check_saved(out, manifest)

    # What users get: the directory as transformers loads it.
    model = AutoModelForTokenClassification.from_pretrained(out).eval()
    assert type(model) is model_class, type(model)
    auto = AutoTokenizer.from_pretrained(out)
    on_disk = Tokenizer.from_file(str(out / "tokenizer.json"))
    encodings = [on_disk.encode(t) for t in TEXTS]
    for text, e in zip(TEXTS, encodings):
        assert auto(text)["input_ids"] == e.ids, f"tokenizers disagree on {text!r}"
    pad = auto.pad_token_id
    assert pad == config.pad_token_id
    longest = max(len(e.ids) for e in encodings)
    assert longest <= MAX_LENGTH
    ids = torch.tensor([e.ids + [pad] * (longest - len(e.ids)) for e in encodings])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (longest - len(e.ids)) for e in encodings])
    with torch.no_grad():
        result = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        base = AutoModel.from_pretrained(out).eval()(input_ids=ids, attention_mask=mask)
    hidden = result.hidden_states[-1]
    assert torch.allclose(hidden, base.last_hidden_state, atol=1e-6), "base model differs"
    m = mask.unsqueeze(-1).float()
    mean = (hidden * m).sum(1) / m.sum(1)
    normalize = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    expected = {
        "model_type": config.model_type,
        "pad_id": pad,
        "texts": TEXTS,
        "ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "tokens": [e.tokens for e in encodings],
        "hidden": [rounded(h) for h in hidden],
        "cls": rounded(normalize(hidden[:, 0])),
        "mean": rounded(normalize(mean)),
        "logits": [rounded(l) for l in result.logits],
        "entities": pipeline_entities(model, auto),
    }
    if config.model_type == "deberta-v2":
        from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position
        states = torch.zeros(1, longest, 1)
        expected["relative_positions"] = build_relative_position(
            states, states, bucket_size=config.position_buckets,
            max_position=config.max_relative_positions)[0].tolist()
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False) + "\n")
    seeded_weights.publish(out, FIXTURES / name, manifest)
    total = sum(p.stat().st_size for p in (FIXTURES / name).iterdir())
    unk = sum(e.ids.count(auto.unk_token_id) for e in encodings)
    print(f"wrote {out} ({total} bytes; batch {tuple(ids.shape)}, {unk} <unk>)", file=sys.stderr)


def medlink(*args, stdin=""):
    return subprocess.run(
        ["cargo", "run", "--release", "-q", "--", *args],
        input=stdin, capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout


def check(model_dir):
    """An encoder checkpoint medlink wrote: transformers loads every weight and gives medlink's
    vectors (CLS and mean pooling) for TEXTS."""
    model, info = AutoModel.from_pretrained(model_dir, output_loading_info=True)
    # The pooler is transformers' own head; medlink pools token vectors itself.
    missing = [k for k in info["missing_keys"] if not k.startswith("pooler.")]
    if missing or info["unexpected_keys"]:
        sys.exit(f"{model_dir}: missing {missing}, unexpected {info['unexpected_keys']}")
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    want = {
        "cls": torch.nn.functional.normalize(hidden[:, 0], dim=-1),
        "mean": torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1),
    }
    worst = 0.0
    for pooling, vectors in want.items():
        out = medlink("embed", "--model", str(model_dir), "--pooling", pooling,
                      "--max-length", str(MAX_LENGTH), stdin="\n".join(TEXTS) + "\n")
        got = torch.tensor([json.loads(line) for line in out.splitlines()])
        worst = max(worst, float((got - vectors).abs().max()))
    print(f"{type(model).__name__} ({model.config.model_type}): max |medlink - transformers| {worst:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        check(Path(sys.argv[2]))
    elif len(sys.argv) == 1:
        for fixture in ARCHITECTURES:
            build(fixture)
    else:
        sys.exit(__doc__)
