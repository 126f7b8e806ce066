#!/usr/bin/env python3
"""Seconds per training step: `medlink train encoder` against the PyTorch reference
(`train_reference.py`, the same recipe) on the same pairs, one after the other, at each thread
count.

    cargo build --release && python3 benches/python/train_step_speed.py [--steps 25] [--write]

The pairs are the ones medlink trains on (`--write-pairs`: MEDIC 2012 synonyms plus NCBI and
BC5CDR train mentions x10, as README "Training an encoder"); both sides take 64 pairs per step
from the base model, max length 25, dropout on. The first `--skip` steps (warm-up: first
allocations, caches) are left out of the mean; each side runs `--reps` times, alternating with
the other, and the median is reported. With --write, replaces BENCHMARKS.md's TRAIN_STEP block.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.ensure(["torch", "transformers"])

from benchmarks_md import cpu_name, replace_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDLINK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
DATA = [
    "--ontology", f"medic:{SHARED / 'vocab/medic_2012/medic_06Jul2012.txt'}",
    "--train-corpus", f"pubtator:{SHARED / 'ncbi_disease/NCBItrainset_corpus.txt'}",
    "--train-corpus", f"pubtator:{SHARED / 'bc5cdr/CDR_TrainingSet.PubTator.txt'}",
    "--mention-repeat", "10",
]


def seconds_per_step(history, skip):
    """Mean seconds per step after the first `skip` steps (history: cumulative seconds)."""
    if len(history) <= skip + 1:
        sys.exit(f"need more than {skip + 1} steps, got {len(history)}")
    return (history[-1]["seconds"] - history[skip - 1]["seconds"]) / (len(history) - skip)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medlink", default=str(ROOT / "target/release/medlink"))
    ap.add_argument("--base", default=str(CACHE / "models/all-MiniLM-L6-v2"))
    ap.add_argument("--work", default=str(ROOT / "target/train-step-speed"))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--skip", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3, help="runs of each side per thread count (median)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pairs = work / "pairs.tsv"
    subprocess.run([args.medlink, "train", "encoder", *DATA, "--base", args.base, "--write-pairs", str(pairs),
                    "--out", str(work / "pairs-only")],
                   check=True, capture_output=True)
    def medlink_run(threads, rep):
        out = work / f"medlink-{threads}-{rep}"
        subprocess.run([args.medlink, "train", "encoder", *DATA, "--base", args.base, "--steps", str(args.steps),
                        "--warmup-steps", str(args.skip), "--threads", str(threads), "--out", str(out)],
                       check=True, capture_output=True)
        return seconds_per_step(json.loads((out / "last/trainer_state.json").read_text())["history"], args.skip)

    def reference_run(threads, rep):
        out = work / f"torch-{threads}-{rep}"
        subprocess.run([sys.executable, str(ROOT / "benches/python/train_reference.py"), "--pairs", str(pairs),
                        "--base", args.base, "--out", str(out), "--steps", str(args.steps),
                        "--warmup-steps", str(args.skip), "--threads", str(threads), "--minutes", "60"],
                       check=True, capture_output=True)
        return seconds_per_step(json.loads((out / "train_log.json").read_text())["history"], args.skip)

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        # The two sides alternate, so a neighbour's load on this shared machine falls on both.
        medlink, reference = [], []
        for rep in range(args.reps):
            medlink.append(medlink_run(threads, rep))
            reference.append(reference_run(threads, rep))
        rows.append({"threads": threads, "medlink": statistics.median(medlink),
                     "reference": statistics.median(reference), "medlink_runs": medlink, "reference_runs": reference})
        print(json.dumps(rows[-1]), file=sys.stderr)
    import torch

    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}. "
        f"`python3 benches/python/train_step_speed.py --write`: {args.steps} steps of 64 pairs from "
        f"all-MiniLM-L6-v2, mean over steps {args.skip + 1}-{args.steps}; median of {args.reps} runs per side, "
        "the two sides alternating.",
        "",
        "| threads | medlink s/step | PyTorch s/step | medlink / PyTorch (lower is faster) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['medlink']:.2f} | {r['reference']:.2f} | {r['medlink'] / r['reference']:.2f} |")
    table = "\n".join(lines)
    print(table)
    (ROOT / "benches/results").mkdir(exist_ok=True)
    (ROOT / "benches/results/train_step_speed.json").write_text(json.dumps(rows, indent=1))
    if args.write:
        replace_block("TRAIN_STEP", table)


if __name__ == "__main__":
    main()
