"""Checks that checkpoints medlink's trainers write for every architecture load in transformers
with the same outputs: for each tiny fixture (RoBERTa, XLM-R, DeBERTa-v2 under tests/fixtures),
`medlink train encoder` and `medlink train tagger` run a few steps from it, then

- the encoder checkpoint loads in `AutoModel` with no missing weight the base had and no
  unexpected one, and its
  pooled, normalised vectors (pooling from the checkpoint's `1_Pooling/config.json`) equal
  `medlink embed --model CHECKPOINT` within 1e-4;
- the tagger checkpoint passes `check_tagger_checkpoint.py` (loads in
  `AutoModelForTokenClassification`, same entities and scores as medlink's tagger).

    cargo build --release && python3 benches/python/check_arch_checkpoints.py

Exits non-zero on any difference. Work files go to target/tmp/arch-checkpoints/.
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
from transformers import AutoModel, AutoTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
MEDLINK = ROOT / "target" / "release" / "medlink"
WORK = ROOT / "target" / "tmp" / "arch-checkpoints"
FIXTURES = ["roberta-tiny", "xlm-roberta-tiny", "deberta-v2-tiny"]
STRINGS = ["heart attack", "myocardial infarction", "Müller's naevus", "high blood pressure", "CVA"]
TOY_ONTOLOGY = [
    "T:1\theart attack\tmyocardial infarction|MI|cardiac infarction",
    "T:2\tbreast cancer\tbreast carcinoma|mammary cancer|cancer of breast",
    "T:3\thigh blood pressure\thypertension|HTN|elevated blood pressure",
    "T:4\tkidney failure\trenal failure|renal insufficiency|kidney insufficiency",
]
CORPUS = f"pubtator:{SHARED / 'bc5cdr' / 'CDR_DevelopmentSet.PubTator.txt'}"


def medlink(*args, stdin=None):
    cmd = [str(MEDLINK), *map(str, args)]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, input=stdin, capture_output=True).stdout


def check_encoder(checkpoint, base):
    model, info = AutoModel.from_pretrained(checkpoint, output_loading_info=True)
    # A weight the base itself lacks (the pooler of a token-classification fixture) is not
    # the checkpoint's fault; anything else missing, unexpected or mismatched is.
    _, base_info = AutoModel.from_pretrained(base, output_loading_info=True)
    problems = {k: set(v) - set(base_info["missing_keys"] if k == "missing_keys" else ())
                for k, v in info.items() if v}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        return f"transformers reports {problems}"
    pooling = json.loads((checkpoint / "1_Pooling" / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    batch = tokenizer(STRINGS, padding=True, truncation=True, max_length=25, return_tensors="pt")
    with torch.no_grad():
        hidden = model.eval()(**batch).last_hidden_state
    if pooling.get("pooling_mode_cls_token"):
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    want = torch.nn.functional.normalize(pooled, dim=-1)
    got = torch.tensor([json.loads(line) for line in
                        medlink("embed", "--model", checkpoint, stdin="\n".join(STRINGS) + "\n").splitlines()])
    diff = (want - got).abs().max().item()
    print(f"  encoder: {type(model).__name__}, max abs difference {diff:.2e}")
    return None if diff < 1e-4 else f"vectors differ by {diff:.2e}"


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    ontology = WORK / "toy.tsv"
    ontology.write_text("id\tname\tsynonyms\n" + "\n".join(TOY_ONTOLOGY) + "\n")
    failures = []
    for name in FIXTURES:
        base = seeded_weights.materialize(name)
        print(f"{name}:")
        medlink("train", "encoder", "--ontology", f"tsv:{ontology}", "--base", base, "--out", WORK / f"{name}-encoder",
                "--steps", 3, "--warmup-steps", 1, "--batch-pairs", 8, "--threads", 1)
        problem = check_encoder(WORK / f"{name}-encoder" / "last", base)
        if problem:
            failures.append(f"{name} encoder: {problem}")
        medlink("train", "tagger", "--train-corpus", CORPUS, "--dev-corpus", CORPUS, "--base", base,
                "--out", WORK / f"{name}-tagger", "--steps", 3, "--warmup-steps", 1, "--batch-size", 4,
                "--max-length", 64, "--stride", 16, "--eval-every", 0, "--threads", 1)
        result = subprocess.run([sys.executable, str(ROOT / "benches" / "python" / "check_tagger_checkpoint.py"),
                                 str(WORK / f"{name}-tagger" / "best")], cwd=ROOT, text=True, capture_output=True)
        print("  tagger: " + result.stdout.strip().replace("\n", "\n  tagger: "))
        if result.returncode != 0:
            failures.append(f"{name} tagger: {result.stdout.strip()[-500:]} {result.stderr.strip()[-500:]}")
    if failures:
        sys.exit("FAILED:\n" + "\n".join(failures))
    print(f"all {len(FIXTURES)} architectures: trained checkpoints load in transformers with the same outputs")


if __name__ == "__main__":
    main()
