"""transformers reference for `medlink train tagger` and medlink's tagging speed.

Training (the same recipe as src/train/tagger.rs, for the same wall time):

    python3 benches/python/tagger_reference.py train --base MODEL_DIR \
        --train pubtator:../shared/data/bc5cdr/CDR_TrainingSet.PubTator.txt \
        --dev pubtator:../shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt \
        --out target/torch-tagger --minutes 10 [--threads 1 --steps 130 --lr 1e-4 ...]

  Documents (PubTator title + " " + abstract) are cut into windows of --max-length tokens
  sharing --stride tokens (the fast tokenizer's overflowing windows); labels are IOB2 on the
  first sub-token of each word (B- where a span starts inside the word, I- inside a span that
  started before, later sub-tokens -100); nested spans keep the longest. BertForTokenClassification
  on --base; AdamW (0.9/0.999, eps 1e-8, weight decay 0.01 except biases and LayerNorm), linear
  warm-up then linear decay to zero at --steps, gradient-norm clip 1.0, --batch-size windows
  per step in a fresh permutation each epoch, cross-entropy. Stops at --steps or --minutes.
  Then tags the dev documents with `pipeline("token-classification", aggregation_strategy=
  "first", stride=...)` and scores entity-level strict F1 (exact character span and type), as
  medlink's dev evaluation does. Writes --out/report.json (F1 per type, seconds per step).

Tagging speed (same model, same texts):

    python3 benches/python/tagger_reference.py speed --model target/runs/bc5cdr/best \
        --texts pubtator:../shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt [--threads 1]

  times the transformers pipeline and medlink's tagger (`cargo run --release --example
  tag_throughput`) on the same documents and prints tokens/s of both and their ratio. Tokens
  are every token of every window, special tokens included, on both sides.
"""
import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["torch", "transformers", "safetensors"])

import torch  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def read_pubtator(spec):
    fmt, path = spec.split(":", 1)
    if fmt != "pubtator":
        sys.exit(f"only pubtator corpora are read here, not {fmt}")
    docs, cur = [], None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "|t|" in line[:20] and cur is None:
            pmid, title = line.split("|t|", 1)
            cur = {"id": pmid, "title": title, "abstract": "", "spans": []}
        elif "|a|" in line[:20] and cur is not None:
            cur["abstract"] = line.split("|a|", 1)[1]
        elif line.strip() == "":
            if cur is not None:
                cur["text"] = cur["title"] + " " + cur["abstract"]
                docs.append(cur)
            cur = None
        elif cur is not None:
            parts = line.split("\t")
            if len(parts) >= 5 and parts[1].isdigit():
                cur["spans"].append((int(parts[1]), int(parts[2]), parts[4]))
    if cur is not None:
        cur["text"] = cur["title"] + " " + cur["abstract"]
        docs.append(cur)
    return docs


def resolve_overlaps(spans):
    kept = []
    for s in sorted((s for s in spans if s[1] > s[0]), key=lambda s: (-(s[1] - s[0]), s[0], s[2])):
        if all(s[1] <= k[0] or s[0] >= k[1] for k in kept):
            kept.append(s)
    return sorted(kept)


def windows(tokenizer, docs, labels, max_length, stride):
    label2id = {l: i for i, l in enumerate(labels)}
    out = []
    for doc in docs:
        spans = resolve_overlaps(doc["spans"])
        enc = tokenizer(doc["text"], truncation=True, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
        for w in range(len(enc["input_ids"])):
            word_ids = enc.word_ids(w)
            offsets = enc["offset_mapping"][w]
            ids = enc["input_ids"][w]
            lab = [-100] * len(ids)
            i = 0
            while i < len(ids):
                if word_ids[i] is None:
                    i += 1
                    continue
                j = i + 1
                while j < len(ids) and word_ids[j] == word_ids[i]:
                    j += 1
                start, end = offsets[i][0], offsets[j - 1][1]
                hit = next((s for s in spans if s[0] < end and s[1] > start), None)
                if hit is None:
                    lab[i] = label2id["O"]
                else:
                    lab[i] = label2id[("B-" if hit[0] >= start else "I-") + hit[2]]
                i = j
            out.append((ids, lab))
    return out


def strict_f1(docs, predictions):
    gold = Counter()
    pred = Counter()
    for doc, ents in zip(docs, predictions):
        for s, e, t in doc["spans"]:
            gold[(doc["id"], s, e, t)] += 1
        for ent in ents:
            pred[(doc["id"], int(ent["start"]), int(ent["end"]), ent["entity_group"])] += 1
    types = sorted({k[3] for k in gold} | {k[3] for k in pred})

    def prf(f):
        tp = sum(min(n, pred[k]) for k, n in gold.items() if f(k))
        g = sum(n for k, n in gold.items() if f(k))
        p = sum(n for k, n in pred.items() if f(k))
        precision = tp / p if p else 0.0
        recall = tp / g if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "gold": g, "predicted": p}

    return {"overall": prf(lambda k: True), **{t: prf(lambda k, t=t: k[3] == t) for t in types}}


def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train_docs = read_pubtator(args.train)
    dev_docs = read_pubtator(args.dev)
    types = sorted({s[2] for d in train_docs for s in d["spans"]})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForTokenClassification.from_pretrained(
        args.base, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)})
    data = windows(tokenizer, train_docs, labels, args.max_length, args.stride)
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    def lr_at(step):
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        return max(0.0, (args.steps - step) / max(1, args.steps - args.warmup_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    order, pos, step, losses = [], 0, 0, []
    started = time.time()
    while step < args.steps and time.time() - started < args.minutes * 60:
        batch = []
        while len(batch) < args.batch_size:
            if pos >= len(order):
                order = list(range(len(data)))
                rng.shuffle(order)
                pos = 0
            batch.append(data[order[pos]])
            pos += 1
        n = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [0] * (n - len(i)) for i, _ in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i, _ in batch])
        lab = torch.tensor([l + [-100] * (n - len(l)) for _, l in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        step += 1
        losses.append(float(loss))
        if step % 10 == 0:
            print(f"step {step} loss {sum(losses[-10:]) / 10:.4f} ({time.time() - started:.0f} s)", file=sys.stderr)
    seconds = time.time() - started
    out = Path(args.out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    model.eval()
    pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first")
    eval_started = time.time()
    with torch.no_grad():
        predictions = [pipe(d["text"], stride=args.stride) for d in dev_docs]
    report = {
        "steps": step, "train_seconds": seconds, "seconds_per_step": seconds / max(step, 1),
        "threads": args.threads, "windows": len(data), "losses": losses,
        "dev_strict": strict_f1(dev_docs, predictions), "eval_seconds": time.time() - eval_started,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "losses"}, indent=1))


def speed(args):
    torch.set_num_threads(args.threads)
    docs = read_pubtator(args.texts)[: args.limit]
    texts = [d["text"].replace("\n", " ") for d in docs]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForTokenClassification.from_pretrained(args.model).eval()
    window = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first")
    tokens = sum(
        sum(len(ids) for ids in tokenizer(t, truncation=True, max_length=window, stride=args.stride,
                                          return_overflowing_tokens=True)["input_ids"])
        for t in texts)
    started = time.time()
    with torch.no_grad():
        for t in texts:
            pipe(t, stride=args.stride)
    torch_seconds = time.time() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.txt"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        out = subprocess.run(
            ["cargo", "run", "--release", "-q", "--example", "tag_throughput", "--", str(args.model), str(path),
             "--threads", str(args.threads), "--stride", str(args.stride), "--max-length", str(window)],
            check=True, cwd=ROOT, capture_output=True, text=True).stdout
    medlink = json.loads(out.strip().splitlines()[-1])
    report = {
        "texts": len(texts), "threads": args.threads, "window": window, "stride": args.stride,
        "transformers_tokens": tokens, "transformers_seconds": torch_seconds,
        "transformers_tokens_per_second": tokens / torch_seconds,
        "medlink_tokens": medlink["tokens"], "medlink_seconds": medlink["seconds"],
        "medlink_tokens_per_second": medlink["tokens_per_second"],
    }
    report["ratio_medlink_over_transformers"] = report["medlink_tokens_per_second"] / report["transformers_tokens_per_second"]
    print(json.dumps(report, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--base", required=True)
    t.add_argument("--train", required=True)
    t.add_argument("--dev", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=10)
    t.add_argument("--steps", type=int, default=130)
    t.add_argument("--warmup-steps", type=int, default=10)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--stride", type=int, default=32)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=42)
    s = sub.add_parser("speed")
    s.add_argument("--model", required=True)
    s.add_argument("--texts", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--stride", type=int, default=32)
    s.add_argument("--limit", type=int, default=200)
    args = ap.parse_args()
    train(args) if args.command == "train" else speed(args)


if __name__ == "__main__":
    main()
