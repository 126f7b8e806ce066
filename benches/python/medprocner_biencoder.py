#!/usr/bin/env python3
"""Regenerates the MEDPROCNER block of BENCHMARKS.md: the MedProcNER bi-encoder setting.

    cargo build --release && python3 benches/python/medprocner_biencoder.py [--minutes 20] [--write]

The published setting (ClinLinker-KB: a Spanish clinical RoBERTa bi-encoder, CLS pooling,
trained on mention-code pairs and a SNOMED CT gazetteer) reproduced with what is here:

- **Data**: MedProcNER's training release, split by documents (`split=train|dev`, a fifth held
  out, seed 0). No SNOMED CT gazetteer is available: the dictionary is the training side's
  codes, named by their mention strings (`index build --add-mentions`), so a held-out mention
  whose code never occurs in training cannot be found (the "code unseen in training" column).
- **Model**: all-MiniLM-L6-v2 (English; no Spanish or multilingual base model can be fetched
  here) with CLS pooling, trained by `medlink train encoder` with no ontology: the pairs are
  mentions of one code in the training side (multi-similarity loss, hard-pair mining),
  `--steps` steps on one thread. No dev evaluation (the held-out side is the report side), so
  the last checkpoint is used.
- **Rows**: the base model with mean pooling (the default), the base model with CLS pooling and
  the trained CLS bi-encoder, each dense-only and hybrid (with tantivy), `medlink eval link
  --train-corpus` for the seen / unseen breakdown. acc@k counts every held-out mention that has
  a code, those whose code the dictionary lacks as misses (the published numbers count alike).

Prints the Markdown table; --write puts it between the MEDPROCNER markers of BENCHMARKS.md
and the raw reports into benches/results/medprocner_biencoder.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block, stale_index  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
MEDLINK = Path(os.environ.get("MEDLINK_BIN", ROOT / "target" / "release" / "medlink"))
WORK = ROOT / "target" / "medprocner"
RESULTS = ROOT / "benches" / "results" / "medprocner_biencoder.json"

MEDPROCNER = SHARED / "spanish" / "medprocner_train"
SPLIT = "dev-fraction=0.2,seed=0"
TRAIN = f"medprocner:{MEDPROCNER}#split=train,{SPLIT}"
HELD_OUT = f"medprocner:{MEDPROCNER}#split=dev,{SPLIT}"
PUBLISHED = "ClinLinker-KB (Spanish RoBERTa bi-encoder + SNOMED CT gazetteer): top-25 0.917 all / 0.831 unseen mentions / 0.808 unseen codes"


def medlink(*args, capture=True):
    cmd = [str(MEDLINK), "--cache-dir", str(CACHE), *map(str, args)]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE if capture else None).stdout


def base_model():
    model = CACHE / "models" / "all-MiniLM-L6-v2"
    if not (model / "config.json").is_file():
        medlink("fetch", capture=False)
    return model


def with_cls_pooling(base):
    """A copy of `base` whose sentence-transformers pooling is the CLS token."""
    out = WORK / "base-cls"
    if not (out / "config.json").is_file():
        tmp = WORK / "base-cls.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(base, tmp)
        pooling = json.loads((tmp / "1_Pooling" / "config.json").read_text())
        pooling.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
        (tmp / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
        tmp.rename(out)
    return out


def train(base, steps, minutes):
    out = WORK / f"trained-{steps}"
    state = out / "last" / "trainer_state.json"
    if not state.is_file() or json.loads(state.read_text())["step"] < steps:
        medlink("train", "encoder", "--train-corpus", TRAIN, "--base", base, "--out", out,
                "--steps", steps, "--warmup-steps", max(1, steps // 20), "--learning-rate", "5e-5",
                "--threads", 1, "--max-minutes", minutes, "--seed", 42,
                *(["--resume"] if (out / "last").is_dir() else []), capture=False)
    return out / "last"


def index(name, model):
    out = WORK / f"index-{name}"
    if stale_index(out, MEDLINK):
        medlink("index", "build", "--add-mentions", TRAIN, "--model", model, "--out", out, capture=False)
    return out


def evaluate(index_dir, mode):
    r = json.loads(medlink("eval", "link", "--index", index_dir, "--corpus", HELD_OUT, "--train-corpus", TRAIN,
                           "--mode", mode, "--ks", "1,5,25", "--json"))
    coded = r["evaluated"] + r["missing_gold"]  # mentions with a code; a missing code is a miss
    b = r["breakdown"]
    unseen_code = b.get("concept=unseen", {"mentions": 0, "no_gold": 0})
    return {
        "report": r,
        "coded": coded,
        **{f"all@{k}": r[f"acc@{k}"] * r["evaluated"] / coded for k in (1, 5, 25)},
        "seen": b["mention=seen"],
        "unseen": b["mention=unseen"],
        "unseen_code_mentions": unseen_code["mentions"] - unseen_code["no_gold"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=30.0, help="stop training early past this")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    base = base_model()
    cls_base = with_cls_pooling(base)
    started = time.time()
    trained = train(cls_base, args.steps, args.minutes)
    state = json.loads((trained / "trainer_state.json").read_text())
    # Each step records the training wall time so far.
    train_seconds = state["history"][-1]["seconds"] if state.get("history") else time.time() - started
    models = [("all-MiniLM-L6-v2, mean pooling (base)", "base-mean", base),
              ("all-MiniLM-L6-v2, CLS pooling (base)", "base-cls", cls_base),
              (f"CLS bi-encoder trained here ({state['step']} steps, {train_seconds / 60:.1f} min)", "trained", trained)]
    results = {}
    for label, name, model in models:
        idx = index(name, model)
        for mode in ("dense", "hybrid"):
            results[f"{name}/{mode}"] = {"label": label, "mode": mode, **evaluate(idx, mode)}
            r = results[f"{name}/{mode}"]
            print(f"{label:60} {mode:7} all@1 {r['all@1']:.3f} all@25 {r['all@25']:.3f}", file=sys.stderr)
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    any_r = next(iter(results.values()))
    lines = [
        f"`python3 benches/python/medprocner_biencoder.py --write` — {machine}, {time.strftime('%Y-%m-%d')}. "
        f"MedProcNER training release, held-out fifth (seed 0): {any_r['coded']:,} coded mentions, "
        f"{any_r['unseen_code_mentions']:,} of them with a code the training side never names. Published: {PUBLISHED}.",
        "",
        "| model | signals | top-1 / 5 / 25, all coded mentions | seen mentions top-1 / 25 | unseen mentions, code known: top-1 / 25 | code unseen in training |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.values():
        s, u = r["seen"], r["unseen"]
        lines.append(
            f"| {r['label']} | {r['mode']} | {r['all@1']:.3f} / {r['all@5']:.3f} / **{r['all@25']:.3f}** | "
            f"{s['acc@1']:.3f} / {s['acc@25']:.3f} ({s['evaluated']:,}) | {u['acc@1']:.3f} / {u['acc@25']:.3f} "
            f"({u['evaluated']:,}) | 0 of {r['unseen_code_mentions']:,} (no gazetteer) |")
    body = "\n".join(lines)
    print(body)
    if args.write:
        replace_block("MEDPROCNER", body)
        RESULTS.write_text(json.dumps({"machine": machine, "train_seconds": train_seconds,
                                       "results": {k: {kk: vv for kk, vv in v.items()} for k, v in results.items()}},
                                      indent=1) + "\n")


if __name__ == "__main__":
    main()
