#!/usr/bin/env python3
"""Regenerates the TAGGER block of BENCHMARKS.md: `medlink train tagger` on each NER corpus.

    cargo build --release && python3 benches/python/tagger_benchmarks.py [--only NAME ...] [--write]

Every run fine-tunes all-MiniLM-L6-v2 (the default model, fetched into the cache by medlink)
with one of two recipes, both evaluated on their dev side only at the end (`--eval-every 0`: no
checkpoint is chosen by any score):
- short: the one tuned on BC5CDR train/dev against transformers at equal wall time (README
  "Training a tagger", tagger_reference.py): 211 steps of 16 windows of 128 tokens (stride 32),
  learning rate 1e-4 with 10 warm-up steps, one thread, stopping early only past --minutes (20);
- long: the same windows and learning rate for 1,000 steps (30 warm-up), two threads (results do
  not depend on the thread count): its length was chosen on NCBI-disease dev, where strict F1
  rose to 0.818 at steps 800-900 with evaluations every 100 steps.
The report side is then tagged by `medlink eval ner --tagger RUN/best --gold TEST` (strict
entity F1, seqeval's definition).

Runs (train -> dev; report):
- BC5CDR (Chemical, Disease): train -> dev; dev (the test set is not in ../shared/data; the dev
  evaluation selects nothing), both recipes. `ner_benchmarks.py --tagger` scores them end to end.
- NCBI-disease: train -> dev; test. With cross-entropy, class-weighted cross-entropy and focal
  loss (gamma 2), the loss comparison; the long recipe with cross-entropy.
- ADE corpus v2 (DRUG / EFFECT): the deterministic document split (`split=train|dev`, a fifth
  held out); the held-out fifth, which the dev evaluation also reads: there is no third side.
- E3C layer 1 Italian (CLINENTITY): the corpus's published train part, split a fifth for
  dev; the published test part.

Runs already trained under target/runs/tagger-bench/NAME are reused (delete one to retrain).
Prints the Markdown table; --write puts it between the TAGGER markers of BENCHMARKS.md and
the raw numbers into benches/results/tagger_corpora.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
MEDLINK = Path(os.environ.get("MEDLINK_BIN", ROOT / "target" / "release" / "medlink"))
RUNS_DIR = ROOT / "target" / "runs" / "tagger-bench"
RESULTS = ROOT / "benches" / "results" / "tagger_corpora.json"
# Written by tagger_reference.py (train and speed) for BC5CDR: medlink beside transformers.
REFERENCE = ROOT / "benches" / "results" / "tagger_bc5cdr.json"

NCBI = SHARED / "ncbi_disease"
ADE = SHARED / "ade_corpus_v2"
# NCBI-disease's four classes as one Disease type, as the published NER benchmarks score it.
NCBI_TRAIN, NCBI_DEV, NCBI_TEST = (f"pubtator:{NCBI / f}#type=Disease" for f in (
    "NCBItrainset_corpus.txt", "NCBIdevelopset_corpus.txt", "NCBItestset_corpus.txt"))
E3C_IT = SHARED / "e3c_layer1_CC-BY-NC" / "data_annotation" / "Italian" / "layer1"

BC5CDR = SHARED / "bc5cdr"

# Each recipe's trainer options; both evaluate on the dev side only at the end.
RECIPES = {
    "short": {"steps": 211, "warmup": 10, "threads": 1},
    "long": {"steps": 1000, "warmup": 30, "threads": 2},
}

# name, corpus label, train spec, dev spec, report spec, report label, loss, recipe, published anchor
RUNS = [
    ("bc5cdr-ce", "BC5CDR (Chemical, Disease)", f"pubtator:{BC5CDR / 'CDR_TrainingSet.PubTator.txt'}",
     f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}",
     f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}", "dev", "ce", "short",
     "BioBERT 93.04 / 86.37 (test); bert-base-cased 89.04 overall (val)"),
    ("bc5cdr-long", "BC5CDR (Chemical, Disease)", f"pubtator:{BC5CDR / 'CDR_TrainingSet.PubTator.txt'}",
     f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}",
     f"pubtator:{BC5CDR / 'CDR_DevelopmentSet.PubTator.txt'}", "dev", "ce", "long",
     "BioBERT 93.04 / 86.37 (test); bert-base-cased 89.04 overall (val)"),
    ("ncbi-ce", "NCBI-disease", NCBI_TRAIN,
     NCBI_DEV, NCBI_TEST,
     "test", "ce", "short", "BioBERT 88.30 (test)"),
    ("ncbi-long", "NCBI-disease", NCBI_TRAIN,
     NCBI_DEV, NCBI_TEST,
     "test", "ce", "long", "BioBERT 88.30 (test)"),
    ("ncbi-weighted", "NCBI-disease", NCBI_TRAIN,
     NCBI_DEV, NCBI_TEST,
     "test", "weighted-ce", "short", "BioBERT 88.30 (test)"),
    ("ncbi-focal", "NCBI-disease", NCBI_TRAIN,
     NCBI_DEV, NCBI_TEST,
     "test", "focal", "short", "BioBERT 88.30 (test)"),
    ("ade-ce", "ADE corpus v2 (DRUG, EFFECT)", f"ade:{ADE}#split=train", f"ade:{ADE}#split=dev",
     f"ade:{ADE}#split=dev", "held-out fifth", "ce", "short", "0.806 DRUG/EFFECT"),
    ("e3c-it-ce", "E3C layer 1 Italian (CLINENTITY)", f"e3c:{E3C_IT}#part=train,split=train",
     f"e3c:{E3C_IT}#part=train,split=dev", f"e3c:{E3C_IT}#part=test", "test", "ce", "short", "-"),
]


def medlink(*args, capture=True):
    cmd = [str(MEDLINK), "--cache-dir", str(CACHE), *map(str, args)]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    result = subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return result.stdout


def base_model():
    """The default model's directory, fetched by medlink on first use."""
    models = CACHE / "models" / "all-MiniLM-L6-v2"
    if not (models / "config.json").is_file():
        medlink("search", "seizure", capture=False)  # fetches the default model and index
    return models


def train(name, train_spec, dev_spec, loss, recipe, minutes, base):
    out = RUNS_DIR / name
    if (out / "best" / "config.json").is_file():
        return out
    r = RECIPES[recipe]
    limit = ["--max-minutes", minutes] if recipe == "short" else []
    medlink("train", "tagger", "--train-corpus", train_spec, "--dev-corpus", dev_spec,
            "--base", base, "--out", out, "--loss", loss, "--steps", r["steps"],
            "--warmup-steps", r["warmup"], "--learning-rate", "1e-4", "--batch-size", 16,
            "--max-length", 128, "--stride", 32, "--threads", r["threads"], "--eval-every", 0,
            *limit, "--seed", 0, capture=False)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="run names to (re)compute")
    ap.add_argument("--minutes", type=float, default=20.0, help="time limit of a short-recipe run")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    base = base_model()
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
    results = previous.get("runs", {})
    for name, corpus, train_spec, dev_spec, report_spec, report_label, loss, recipe, anchor in RUNS:
        if args.only and name not in args.only:
            continue
        run = train(name, train_spec, dev_spec, loss, recipe, args.minutes, base)
        state = json.loads((run / "last" / "trainer_state.json").read_text())
        started = time.time()
        report = json.loads(medlink("eval", "ner", "--tagger", run / "best", "--gold", report_spec,
                                    "--threads", 1))
        results[name] = {
            "corpus": corpus,
            "train": train_spec.replace(str(SHARED), "$SHARED"),
            "dev_corpus": dev_spec.replace(str(SHARED), "$SHARED"),
            "report": report_spec.replace(str(SHARED), "$SHARED"),
            "report_label": report_label,
            "loss": loss,
            "recipe": recipe,
            "threads": RECIPES[recipe]["threads"],
            "anchor": anchor,
            "steps": state["step"],
            "train_seconds": state["history"][-1]["seconds"],  # wall time so far, per step
            "dev": state["best"],
            "report_strict": report["strict"],
            "report_gold": report["gold"],
            "tag_seconds": time.time() - started,
            "measured": time.strftime("%Y-%m-%d"),
        }
    rows = []
    for name, *_ in RUNS:
        r = results.get(name)
        if r is None:
            continue
        overall = r["report_strict"]["overall"]
        per_type = ", ".join(f"{t} {v['f1']:.3f}" for t, v in sorted(r["report_strict"]["per_type"].items()))
        rows.append(
            f"| {r['corpus']} | {r['loss']} | {r['recipe']}: {r['steps']} steps, "
            f"{r['train_seconds'] / 60:.1f} min, {r['threads']} thread{'s' if r['threads'] > 1 else ''} | "
            f"{r['dev']['f1']:.3f} | {r['report_label']} | {overall['precision']:.3f} / {overall['recall']:.3f} / "
            f"**{overall['f1']:.3f}** | {per_type} | {r['anchor']} |")
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    # Runs are re-measured one by one (--only): say when each of the table's rows was.
    dates = sorted({r["measured"] for r in results.values()})
    reference = []
    if REFERENCE.is_file():
        ref = json.loads(REFERENCE.read_text())
        m, t, speed = ref["medlink"], ref["transformers"], ref["tagging_speed"]
        reference = [
            "",
            f"Against transformers, same base, windows, recipe and wall time ({ref['machine']}; "
            f"`benches/python/tagger_reference.py`, raw numbers in `{REFERENCE.relative_to(ROOT)}`):",
            "",
            "| BC5CDR dev strict F1 | medlink | transformers | ratio |",
            "|---|---:|---:|---:|",
            f"| overall | **{m['dev']['f1']:.3f}** | {t['dev']['overall']['f1']:.3f} | "
            f"{m['dev']['f1'] / t['dev']['overall']['f1']:.2f}x |",
            *(f"| {ty} | {m['dev']['per_type_f1'][ty]:.3f} | {t['dev'][ty]['f1']:.3f} | "
              f"{m['dev']['per_type_f1'][ty] / t['dev'][ty]['f1']:.2f}x |" for ty in ("Chemical", "Disease")),
            f"| seconds per step (16 windows of 128 tokens, 1 thread) | {m['seconds_per_step']:.2f} | "
            f"{t['seconds_per_step']:.2f} | {t['seconds_per_step'] / m['seconds_per_step']:.2f}x faster |",
            f"| tagging tokens/s ({speed['window']}-token windows, 1 thread) | {speed['medlink_tokens_per_second']:,.0f} | "
            f"{speed['transformers_tokens_per_second']:,.0f} (pipeline) | {speed['ratio']:.2f}x |",
        ]
    body = "\n".join([
        f"`python3 benches/python/tagger_benchmarks.py --write` — base all-MiniLM-L6-v2, "
        f"machine: {machine}, measured {', '.join(dates)}. Strict entity F1 (exact span and type).",
        "",
        "| corpus | loss | recipe: training | dev F1 | reported on | P / R / F1 | F1 per type | published |",
        "|---|---|---|---:|---|---|---|---|",
        *rows,
        *reference,
    ])
    print(body)
    if args.write:
        replace_block("TAGGER", body)
        RESULTS.write_text(json.dumps({"machine": machine, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
