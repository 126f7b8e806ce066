"""Learning curve of a `medlink train encoder` run: dev acc@1 against training pairs seen.

    python3 benches/python/learning_curve.py --run target/train/long [--label TEXT] [--write]

Reads the run's `last/trainer_state.json` (every dev evaluation and every step's loss, as the
trainer records them; step 0 is the base model's dev score when the run evaluated it), draws
benches/results/learning_curve.svg (dev acc@1 / acc@5 and the training loss against pairs
seen) and, with --write, replaces BENCHMARKS.md's LEARNING_CURVE block with the table.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_name, replace_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def svg(evals, history, pairs_per_step, path, title):
    w, h, pad = 640, 300, 56
    max_pairs = max([e["step"] for e in evals] + [s["step"] for s in history]) * pairs_per_step or 1
    accs = [e[k] for e in evals for k in ("acc@1", "acc@5")]
    lo, hi = min(accs) - 0.01, max(accs) + 0.01
    losses = [s["loss"] for s in history] or [0.0]
    lmax = max(losses) * 1.05 or 1.0
    sx = lambda p: pad + p / max_pairs * (w - 2 * pad)  # noqa: E731
    sy = lambda v: h - pad - (v - lo) / (hi - lo or 1) * (h - 2 * pad)  # noqa: E731
    sl = lambda v: h - pad - v / lmax * (h - 2 * pad)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           'font-size="11">', '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{w / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{w - pad}" y1="{pad}" x2="{w - pad}" y2="{h - pad}" stroke="#bbb"/>',
           f'<text x="{w / 2}" y="{h - 18}" text-anchor="middle">training pairs seen</text>']
    for t in range(5):
        p = max_pairs * t / 4
        out.append(f'<text x="{sx(p)}" y="{h - pad + 14}" text-anchor="middle">{p / 1000:.0f}k</text>')
        v = lo + (hi - lo) * t / 4
        out.append(f'<text x="{pad - 4}" y="{sy(v) + 4}" text-anchor="end">{v:.3f}</text>')
        out.append(f'<text x="{w - pad + 4}" y="{sl(lmax * t / 4) + 4}" fill="#999">{lmax * t / 4:.2f}</text>')
    # The loss, smoothed over 20 steps, in grey behind the dev scores.
    smooth = []
    for i in range(len(history)):
        window = history[max(0, i - 19): i + 1]
        smooth.append((history[i]["step"] * pairs_per_step, sum(s["loss"] for s in window) / len(window)))
    if smooth:
        out.append('<polyline fill="none" stroke="#ccc" stroke-width="1.5" points="{}"/>'.format(
            " ".join(f"{sx(p):.1f},{sl(v):.1f}" for p, v in smooth)))
    for key, colour, dy in (("acc@1", "#d62728", 0), ("acc@5", "#1f77b4", 12)):
        pts = [(sx(e["step"] * pairs_per_step), sy(e[key])) for e in evals]
        out.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
            colour, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
        out.append(f'<text x="{pad + 8}" y="{pad + dy}" fill="{colour}">dev {key} (left axis)</text>')
    out.append(f'<text x="{pad + 8}" y="{pad + 24}" fill="#999">training loss, 20-step mean (right axis)</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="the --out directory of a `medlink train encoder` run")
    ap.add_argument("--label", default="")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    run = Path(args.run)
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    pairs_per_step = state["options"]["batch_pairs"] * state["options"].get("accumulation", 1)
    evals = state["evaluations"]
    if not evals:
        sys.exit(f"{run}: the run has no dev evaluation (train with --dev-corpus)")
    history = state["history"]
    results = ROOT / "benches/results"
    results.mkdir(exist_ok=True)
    svg(evals, history, pairs_per_step, results / "learning_curve.svg",
        f"dev acc@1 / acc@5 vs pairs seen {args.label}".strip())
    seconds = {s["step"]: s["seconds"] for s in history}
    lines = [
        f"Machine: {cpu_name()}. `python3 benches/python/learning_curve.py --run {args.run} --write` "
        f"{args.label} — {state['step']} steps of {pairs_per_step} pairs, {state['pairs']:,} training pairs; "
        f"dev scores are the trainer's own (dense, exact search, concept level, abbreviations expanded). "
        f"Plot: `benches/results/learning_curve.svg`. Generated {time.strftime('%Y-%m-%d')}.",
        "",
        "| step | pairs seen | training time (min) | dev acc@1 | dev acc@5 | dev acc@25 |",
        "|---|---|---|---|---|---|",
    ]
    for e in evals:
        minutes = seconds.get(e["step"], 0.0) / 60
        lines.append(f"| {e['step']} | {e['step'] * pairs_per_step:,} | {minutes:.0f} | {e['acc@1']:.4f} | "
                     f"{e['acc@5']:.4f} | {e['acc@25']:.4f} |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        replace_block("LEARNING_CURVE", text)


if __name__ == "__main__":
    main()
