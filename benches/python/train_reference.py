#!/usr/bin/env python3
"""PyTorch reference for `medlink train encoder`: the same recipe, on the same pairs, for the
same wall time.

    medlink train encoder ... --write-pairs target/pairs.tsv      # the exact pairs medlink trains on
    python3 benches/python/train_reference.py --pairs target/pairs.tsv --base MODEL_DIR \
        --out target/torch-model --minutes 20 [--steps 2000 --warmup-steps 100 --lr 2e-5 ...]

Recipe (mirrors src/train/): mean-pooled, L2-normalised embeddings of both sides of
`--batch-pairs` positive pairs; multi-similarity loss (alpha 1, beta 60, base 0.5) after
online hard-pair mining (margin 0.2), mean over anchors; AdamW (betas 0.9/0.999, eps 1e-8,
weight decay 0.01 except biases and LayerNorm weights); global gradient-norm clip 1.0; linear
warm-up then linear decay to zero at --steps; max length 25; dropout on; pair order a fresh
permutation each epoch. Stops at --steps or after --minutes, whichever first.

Writes a sentence-transformers model directory to --out (medlink's `index build --model` loads
it) and --out/train_log.json (steps, seconds per step, loss curve).

With --check-medlink-model DIR, instead loads a model directory written by medlink's trainer
in sentence-transformers and prints the cosine between its vectors and `medlink embed`'s for
the same strings (the checkpoint-format check).
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def read_pairs(path):
    labels, a, b = [], [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                sys.exit(f"{path}:{n}: expected label<TAB>text<TAB>text")
            labels.append(int(parts[0]))
            a.append(parts[1])
            b.append(parts[2])
    return labels, a, b


def mine(sim, labels, margin):
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    pos = same & ~eye
    neg = ~same
    s = sim.detach()
    hardest_pos = torch.where(pos, s, torch.full_like(s, math.inf)).min(dim=1).values
    hardest_neg = torch.where(neg, s, torch.full_like(s, -math.inf)).max(dim=1).values
    pos_keep = pos & (s - margin < hardest_neg[:, None])
    neg_keep = neg & (s + margin > hardest_pos[:, None])
    return pos_keep.float(), neg_keep.float()


def ms_loss(emb, labels, alpha=1.0, beta=60.0, base=0.5, margin=0.2):
    sim = emb @ emb.T
    pos, neg = mine(sim, labels, margin)
    pos_term = torch.log1p((torch.exp(-alpha * (sim - base)) * pos).sum(1)) / alpha
    neg_term = torch.log1p((torch.exp(beta * (sim - base)) * neg).sum(1)) / beta
    return (pos_term + neg_term).mean()


def embed(model, tokenizer, texts, max_length):
    tok = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(**tok).last_hidden_state
    mask = tok["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def train(args):
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    labels, a, b = read_pairs(args.pairs)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = AutoModel.from_pretrained(args.base)
    model.train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "LayerNorm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    def lr_factor(step):
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        return max(0.0, (args.steps - step) / max(1, args.steps - args.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    generator = torch.Generator().manual_seed(args.seed)
    n = len(labels)
    order, position = torch.randperm(n, generator=generator).tolist(), 0
    history, started, step = [], time.time(), 0
    while step < args.steps and time.time() - started < args.minutes * 60:
        batch = []
        while len(batch) < args.batch_pairs:
            if position == n:
                order, position = torch.randperm(n, generator=generator).tolist(), 0
            batch.append(order[position])
            position += 1
        texts = [a[i] for i in batch] + [b[i] for i in batch]
        lab = torch.tensor([labels[i] for i in batch] * 2)
        loss = ms_loss(embed(model, tokenizer, texts, args.max_length), lab)
        optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        history.append({"step": step, "loss": loss.item(), "grad_norm": float(grad_norm),
                        "seconds": time.time() - started})
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} {step * args.batch_pairs / (time.time() - started):.1f} pairs/s",
                  file=sys.stderr)
    seconds = time.time() - started
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for extra in ["modules.json", "sentence_bert_config.json", "1_Pooling/config.json"]:
        src = Path(args.base) / extra
        if src.exists():
            (out / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, out / extra)
    log = {"steps": step, "seconds": seconds, "seconds_per_step": seconds / max(1, step),
           "pairs_per_second": step * args.batch_pairs / seconds, "pairs": n,
           "torch": torch.__version__, "threads": args.threads, "history": history}
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    print(json.dumps({k: v for k, v in log.items() if k != "history"}))


def check_medlink_model(args):
    from sentence_transformers import SentenceTransformer

    texts = ["heart attack", "myocardial infarction", "breast carcinoma", "MI", "Wilson disease"]
    st = SentenceTransformer(args.check_medlink_model, device="cpu")
    ours = st.encode(texts, normalize_embeddings=True)
    p = subprocess.run([args.medlink, "embed", "--model", args.check_medlink_model],
                       input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
    theirs = [json.loads(line) for line in p.stdout.splitlines()]
    cos = [float(sum(x * y for x, y in zip(u, v))) for u, v in zip(ours, theirs)]
    print(json.dumps({"model": args.check_medlink_model, "min_cosine": min(cos), "cosines": cos}))
    if min(cos) < 0.9999:
        sys.exit("sentence-transformers and medlink disagree on the medlink-trained model")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs")
    ap.add_argument("--base")
    ap.add_argument("--out")
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-pairs", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=25)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--check-medlink-model")
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    args = ap.parse_args()
    if args.check_medlink_model:
        check_medlink_model(args)
    elif args.pairs and args.base and args.out:
        train(args)
    else:
        ap.error("give --pairs, --base and --out (or --check-medlink-model DIR)")


if __name__ == "__main__":
    main()
