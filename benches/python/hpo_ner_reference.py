"""Reference: FastHPOCR (PyPI `fasthpocr`, a dictionary-based HPO concept recogniser) beside
medlink's dictionary matcher on the GSC+ dev split (PhenoTagger layout, 22 documents), both
scored by medlink's own end-to-end scorer (`medlink eval e2e`).

    python3 benches/python/hpo_ner_reference.py [--write] [--passes 20] [--repeat 50]

- FastHPOCR's index is built from the same hp.obo once (slow: ~several minutes) and cached under
  target/fasthpocr-index/<sha256 of hp.obo>/; later runs reuse it.
- FastHPOCR's annotations are written as PubTator and scored with
  `medlink eval e2e --json --corpus phenotagger:GOLD,INPUT --predicted pubtator:FILE`;
  medlink itself is scored with `medlink eval e2e --json --corpus phenotagger:GOLD,INPUT`, once
  linking with the encoder (the default) and once with `--linking dictionary` (no model).
- Speed: FastHPOCR's annotation of the 22 documents, index already loaded, repeated --passes
  times; medlink's per-pass speed is the marginal speed of `medlink annotate` between the corpus
  once and repeated --repeat times (warm passes, index and model loaded), beside the wall
  time of `medlink annotate` over the corpus and over the corpus repeated --repeat times
  (process start, index and model loading included).
- Prints a Markdown table; --write puts it into BENCHMARKS.md (block HPO_NER) and the raw numbers
  into benches/results/hpo_ner.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refenv  # noqa: E402

refenv.IMPORT_NAMES.setdefault("fasthpocr", "FastHPOCR")  # the distribution installs `FastHPOCR`
refenv.ensure(["fasthpocr", "pronto"])

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from importlib import metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HPO_OBO = Path("/work/shared/data/hpo/hp.obo")
CORPUS_DIR = Path("/work/shared/data/hpo/gsc_plus_dev")
GOLD = CORPUS_DIR / "GSCplus_dev_gold.tsv"
INPUT = CORPUS_DIR / "GSCplus_dev_input.PubTator"
CORPUS_SPEC = f"phenotagger:{GOLD},{INPUT}"
INDEX_ROOT = ROOT / "target" / "fasthpocr-index"
WORK = ROOT / "target" / "tmp" / "hpo_ner"
MEDLINK = Path(os.environ.get("MEDLINK_BIN", ROOT / "target" / "release" / "medlink"))
CACHE = Path(os.environ.get("MEDLINK_CACHE", ROOT / "target" / "medlink-cache"))
RESULTS = ROOT / "benches" / "results" / "hpo_ner.json"
BLOCK = "HPO_NER"
SECTION = "## Phenotype recognition: medlink dictionary matcher vs FastHPOCR (GSC+ dev)"


# ---------------------------------------------------------------- FastHPOCR index


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_index(obo=HPO_OBO):
    """FastHPOCR's index of `obo` (default indexConfig), built once and cached by the file's
    SHA-256. Returns (index file, build seconds or None when cached)."""
    from FastHPOCR.IndexHPO import IndexHPO
    from FastHPOCR.util.CRConstants import HP_INDEX_FILE

    folder = INDEX_ROOT / sha256(obo)
    index_file = folder / HP_INDEX_FILE
    if index_file.exists():
        return index_file, None
    tmp = INDEX_ROOT / f"tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.time()
    IndexHPO(str(obo), str(tmp), indexConfig={}).index()
    seconds = time.time() - start
    if not (tmp / HP_INDEX_FILE).exists():
        raise SystemExit(f"FastHPOCR wrote no index into {tmp}")
    (tmp / "build_seconds.txt").write_text(f"{seconds:.1f}\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return index_file, seconds


def cached_build_seconds(index_file):
    path = index_file.parent / "build_seconds.txt"
    return float(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------- corpus


def read_pubtator_texts(path):
    """[(pmid, title, abstract)] in file order."""
    docs, titles, abstracts = [], {}, {}
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if "|t|" in line[:30] and "\t" not in line.split("|t|")[0]:
            pmid, title = line.split("|t|", 1)
            docs.append(pmid)
            titles[pmid] = title
        elif "|a|" in line[:30] and "\t" not in line.split("|a|")[0]:
            pmid, abstract = line.split("|a|", 1)
            abstracts[pmid] = abstract
    return [(p, titles[p], abstracts.get(p, "")) for p in docs]


def read_gold(path):
    """{pmid: [(start, end, text, id)]} from PhenoTagger's gold TSV."""
    gold, state, pmid = {}, None, None
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if state is None:
            if line.strip():
                pmid, state = line.strip(), "text"
                gold[pmid] = []
        elif state == "text":
            state = "ann"
        elif not line.strip():
            state = None
        else:
            start, end, text, hid = line.split("\t")
            gold[pmid].append((int(start), int(end), text, hid.strip()))
    return gold


def read_pubtator_mentions(path):
    """{pmid: [(start, end, text, id)]} from a PubTator file's annotation lines."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        cols = line.split("\t")
        if len(cols) >= 6:
            out.setdefault(cols[0], []).append(
                (int(cols[1]), int(cols[2]), cols[3], cols[5].split("|")[0].strip()))
    return out


def hpo_alt_ids(obo=HPO_OBO):
    """{alt_id: primary id} read from hp.obo (gold ids may be secondary ones)."""
    alt, current = {}, None
    for line in Path(obo).read_text(encoding="utf-8", errors="replace").split("\n"):
        if line.startswith("id: "):
            current = line[4:].strip()
        elif line.startswith("alt_id: ") and current:
            alt[line[8:].strip()] = current
        elif line.startswith("[Typedef]"):
            current = None
    return alt


def write_pubtator(path, docs, annotations):
    """PubTator with `Phenotype` mentions; offsets into title + " " + abstract."""
    with open(path, "w", encoding="utf-8") as fh:
        for pmid, title, abstract in docs:
            fh.write(f"{pmid}|t|{title}\n{pmid}|a|{abstract}\n")
            text = f"{title} {abstract}"
            for start, end, hid in annotations[pmid]:
                mention = text[start:end]
                if "\t" in mention or "\n" in mention:
                    raise ValueError(f"{pmid}: mention {mention!r} has a tab or newline")
                fh.write(f"{pmid}\t{start}\t{end}\t{mention}\tPhenotype\t{hid}\n")
            fh.write("\n")


# ---------------------------------------------------------------- medlink


def medlink(*args, timed=False):
    if not MEDLINK.exists():
        raise SystemExit(f"{MEDLINK} is missing (a rebuild in progress? retry when it is back)")
    env = dict(os.environ, MEDLINK_CACHE=str(CACHE))
    start = time.perf_counter()
    proc = subprocess.run([str(MEDLINK), *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"medlink {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return (proc, seconds) if timed else proc


def e2e(predicted=None, linking="encoder"):
    args = ["eval", "e2e", "--json", "--corpus", CORPUS_SPEC]
    if predicted:
        args += ["--predicted", f"pubtator:{predicted}"]
    else:
        args += ["--linking", linking]
    return json.loads(medlink(*args).stdout)


LINKINGS = {
    "encoder": "medlink dictionary matcher (default HPO index, hybrid linker)",
    "dictionary": "medlink dictionary matcher, `--linking dictionary` (no model)",
}


def run_medlink(linking, n, repeat, passes):
    """Scores and speeds of medlink with one `--linking`: `eval e2e` `passes` times (its speed
    is one cold pass over 22 documents: a few milliseconds, first-touch costs included), then
    `annotate` over the corpus once and `repeat` times; the per-pass speed is the marginal one
    between those two runs (repeat - 1 warm passes, index and model loaded), as FastHPOCR's is
    the mean of warm passes."""
    reports = [e2e(linking=linking) for _ in range(passes)]
    speeds = sorted(r["documents_per_second"] for r in reports)
    pred = WORK / f"medlink_{linking}.PubTator"
    pred.unlink(missing_ok=True)
    common = ["annotate", "--linking", linking, "--input-format", "pubtator", "--output-format", "pubtator"]
    _, one_run_s = medlink(*common, "--input", str(INPUT), "--output", str(pred), timed=True)
    repeated = WORK / f"gsc_dev_x{repeat}.PubTator"
    block = INPUT.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
    repeated.write_text(block * repeat, encoding="utf-8")
    repeated_out = WORK / f"medlink_{linking}_x{repeat}.PubTator"
    repeated_out.unlink(missing_ok=True)
    proc, repeat_run_s = medlink(*common, "--input", str(repeated), "--output", str(repeated_out), timed=True)
    return reports[0], pred, {
        "e2e_cold_pass_docs_per_s": speeds,
        "annotate_1x_wall_s": one_run_s,
        "annotate_1x_docs_per_s": n / one_run_s,
        f"annotate_{repeat}x_wall_s": repeat_run_s,
        f"annotate_{repeat}x_docs_per_s": n * repeat / repeat_run_s,
        "annotate_marginal_docs_per_s": n * (repeat - 1) / max(repeat_run_s - one_run_s, 1e-9),
        "docs_per_s_pass": n * (repeat - 1) / max(repeat_run_s - one_run_s, 1e-9),
        "annotate_stderr_tail": proc.stderr.strip().split("\n")[-1],
    }


def prf(d):
    return {k: d[k] for k in ("precision", "recall", "f1") if k in d} | {
        k: d[k] for k in ("tp", "fp", "fn", "fn_") if k in d}


def summary(report):
    return {
        "predicted_mentions": report["predicted_mentions"],
        "gold_mentions": report["gold_mentions"],
        "mentions_strict": prf(report["mentions_strict"]),
        "mentions_lenient": prf(report["mentions_lenient"]),
        "spans_strict": prf(report["spans"]["strict"]["overall"]),
        "spans_lenient": prf(report["spans"]["lenient"]["overall"]),
        "document_concepts": prf(report["document_concepts"]),
    }


# ---------------------------------------------------------------- error analysis


def strict_hits(gold, predicted, resolve):
    """Gold mentions (pmid, start, end, text, id) matched by a prediction with the same span
    and the same (resolved) id, and the predictions matching none."""
    found, false_pos = set(), []
    for pmid, mentions in gold.items():
        keys = {(s, e, resolve(h)) for s, e, _, h in mentions}
        for s, e, text, h in predicted.get(pmid, []):
            if (s, e, resolve(h)) in keys:
                found.add((pmid, s, e, resolve(h)))
            else:
                false_pos.append((pmid, s, e, text, resolve(h)))
    return found, false_pos


def analyse(gold, ours, theirs, resolve, names):
    """Which gold mentions each system finds (strict span + id) that the other misses, and
    how the misses look (no span at all, a different span, the right span with a wrong id)."""
    gold_keys = [(p, s, e, t, resolve(h)) for p, ms in gold.items() for s, e, t, h in ms]
    ours_found, ours_fp = strict_hits(gold, ours, resolve)
    theirs_found, theirs_fp = strict_hits(gold, theirs, resolve)

    def miss_kind(pred, p, s, e, h):
        same = [m for m in pred.get(p, []) if (m[0], m[1]) == (s, e)]
        if same:
            return f"span found, id {resolve(same[0][3])}"
        over = [m for m in pred.get(p, []) if m[0] < e and s < m[1]]
        if over:
            return "overlapping span " + "; ".join(f"'{m[2]}' {resolve(m[3])}" for m in over[:2])
        return "no span"

    only_theirs = [
        {"pmid": p, "start": s, "end": e, "text": t, "id": h,
         "medlink": miss_kind(ours, p, s, e, h)}
        for p, s, e, t, h in gold_keys
        if (p, s, e, h) in theirs_found and (p, s, e, h) not in ours_found]
    only_ours = [
        {"pmid": p, "start": s, "end": e, "text": t, "id": h,
         names[1]: miss_kind(theirs, p, s, e, h)}
        for p, s, e, t, h in gold_keys
        if (p, s, e, h) in ours_found and (p, s, e, h) not in theirs_found]
    both_miss = [
        {"pmid": p, "start": s, "end": e, "text": t, "id": h,
         "medlink": miss_kind(ours, p, s, e, h), names[1]: miss_kind(theirs, p, s, e, h)}
        for p, s, e, t, h in gold_keys
        if (p, s, e, h) not in ours_found and (p, s, e, h) not in theirs_found]
    kinds = Counter(m["medlink"].split(",")[0].split(" '")[0] for m in only_theirs + both_miss)
    fp_text = lambda fps: Counter(f"{t.lower()} {h}" for _, _, _, t, h in fps).most_common(25)  # noqa: E731
    return {
        "gold_found_by_fasthpocr_only": only_theirs,
        "gold_found_by_medlink_only": only_ours,
        "gold_missed_by_both": both_miss,
        "medlink_miss_kinds": dict(kinds),
        "medlink_false_positives_top": fp_text(ours_fp),
        "fasthpocr_false_positives_top": fp_text(theirs_fp),
    }


# ---------------------------------------------------------------- report


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().split("\n"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt(p):
    return f"{p['precision']:.3f} / {p['recall']:.3f} / **{p['f1']:.3f}**"


def table(rows):
    head = ("| System | Mentions strict (span + id) P / R / F1 | Mentions lenient F1 "
            "| Spans strict F1 | Documents P / R / F1 | docs/s per pass | docs/s whole run |\n"
            "|---|---|---|---|---|---:|---:|")
    lines = [head]
    for r in rows:
        s = r["scores"]
        lines.append(
            f"| {r['system']} | {fmt(s['mentions_strict'])} | {s['mentions_lenient']['f1']:.3f} "
            f"| {s['spans_strict']['f1']:.3f} | {fmt(s['document_concepts'])} "
            f"| {r['docs_per_s_pass']:.1f} | {r['docs_per_s_whole']} |")
    return "\n".join(lines)


def write_benchmarks(body):
    import benchmarks_md

    text = benchmarks_md.BENCHMARKS.read_text()
    if f"<!-- {BLOCK}:BEGIN -->" not in text:
        sep = "" if text.endswith("\n") else "\n"
        benchmarks_md.BENCHMARKS.write_text(
            f"{text}{sep}\n{SECTION}\n\n<!-- {BLOCK}:BEGIN -->\n<!-- {BLOCK}:END -->\n")
    benchmarks_md.replace_block(BLOCK, body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md and benches/results/hpo_ner.json")
    ap.add_argument("--passes", type=int, default=20, help="timed FastHPOCR passes over the corpus")
    ap.add_argument("--repeat", type=int, default=50, help="copies of the corpus in medlink's timed annotate run")
    ap.add_argument("--medlink-passes", type=int, default=3, help="`eval e2e` runs per medlink row (cold-pass speed)")
    ap.add_argument("--build-only", action="store_true", help="build (or find) FastHPOCR's index and stop")
    args = ap.parse_args()

    index_file, built = ensure_index()
    build_s = built if built is not None else cached_build_seconds(index_file)
    print(f"FastHPOCR index: {index_file} ({'built in %.0fs' % built if built else 'cached'})", file=sys.stderr)
    if args.build_only:
        return

    WORK.mkdir(parents=True, exist_ok=True)
    docs = read_pubtator_texts(INPUT)
    gold = read_gold(GOLD)
    alt = hpo_alt_ids()
    resolve = lambda h: alt.get(h, h)  # noqa: E731
    n = len(docs)

    # ---- FastHPOCR: load, annotate, time
    from FastHPOCR.HPOAnnotator import HPOAnnotator

    t = time.perf_counter()
    annotator = HPOAnnotator(str(index_file))
    load_s = time.perf_counter() - t
    texts = [(pmid, f"{title} {abstract}") for pmid, title, abstract in docs]
    settings = {"default": False, "longest": True}  # annotate(text, longestMatch=...)
    fast = {}
    for name, longest in settings.items():
        t = time.perf_counter()
        first = {pmid: annotator.annotate(text, longestMatch=longest) for pmid, text in texts}
        first_pass_s = time.perf_counter() - t
        passes = []
        for _ in range(args.passes):
            t = time.perf_counter()
            for _, text in texts:
                annotator.annotate(text, longestMatch=longest)
            passes.append(time.perf_counter() - t)
        annotations = {pmid: sorted((a.getStartOffset(), a.getEndOffset(), a.getHPOUri()) for a in anns)
                       for pmid, anns in first.items()}
        path = WORK / f"fasthpocr_{name}.PubTator"
        write_pubtator(path, docs, annotations)
        mean = sum(passes) / len(passes)
        fast[name] = {
            "longestMatch": longest,
            "predictions": str(path),
            "first_pass_s": first_pass_s,
            "pass_s": passes,
            "pass_mean_s": mean,
            "docs_per_s_pass": n / mean,
            # In-process: index load + one pass (Python start-up and imports not included).
            "docs_per_s_load_plus_1_pass": n / (load_s + first_pass_s),
            "docs_per_s_load_plus_repeat": n * args.repeat / (load_s + args.repeat * mean),
            "report": e2e(path),
        }
        print(f"FastHPOCR {name}: {n / mean:.1f} docs/s per pass", file=sys.stderr)

    # ---- medlink: e2e (scores + per-pass speed), annotate runs (whole-run speed + predictions)
    ours = {linking: run_medlink(linking, n, args.repeat, args.medlink_passes) for linking in LINKINGS}
    ours_pred = ours["dictionary"][1]

    analysis = analyse(gold, read_pubtator_mentions(ours_pred),
                       read_pubtator_mentions(fast["default"]["predictions"]), resolve,
                       ("medlink", "fasthpocr"))

    version = metadata.version("fasthpocr")
    medlink_version = medlink("--version").stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    cpu = cpu_model()
    rows = [
        {"system": label,
         "scores": summary(ours[linking][0]),
         "docs_per_s_pass": ours[linking][2]["docs_per_s_pass"],
         "docs_per_s_whole": f"{ours[linking][2]['annotate_1x_docs_per_s']:.1f} (1×) / "
                             f"{ours[linking][2][f'annotate_{args.repeat}x_docs_per_s']:.1f} ({args.repeat}×)"}
        for linking, label in LINKINGS.items()
    ]
    for name, label in (("default", "defaults: all matches, `longestMatch=False`"),
                        ("longest", "`longestMatch=True`")):
        f = fast[name]
        rows.append({
            "system": f"FastHPOCR {version} ({label})",
            "scores": summary(f["report"]),
            "docs_per_s_pass": f["docs_per_s_pass"],
            "docs_per_s_whole": f"{f['docs_per_s_load_plus_1_pass']:.1f} (1×) / "
                                f"{f['docs_per_s_load_plus_repeat']:.1f} ({args.repeat}×)",
        })
    build_note = f"{build_s:.0f} s" if build_s else "unknown time (built by an earlier run)"
    body = "\n".join([
        f"`python3 benches/python/hpo_ner_reference.py --write` — GSC+ dev (PhenoTagger split, {n} "
        f"documents, {summary(ours['encoder'][0])['gold_mentions']} gold mentions), hp.obo "
        f"`{HPO_OBO.name}` sha256 `{sha256(HPO_OBO)[:12]}`, {medlink_version} (release build, "
        f"checkout `{commit}`), {cpu}, {os.cpu_count()} cores shared "
        "with other work. Every row is scored by `medlink eval e2e` (FastHPOCR's output through "
        "`--predicted pubtator:FILE`); strict = same span and same HPO id (alt ids resolved).",
        "",
        table(rows),
        "",
        f"- docs/s per pass: medlink = the marginal speed of `medlink annotate` between the corpus "
        f"once and {args.repeat}× ({args.repeat - 1} warm passes: detection, linking and PubTator "
        "output, index and model loaded; one cold pass in `eval e2e` is slower: "
        + ", ".join(f"median {sorted(ours[k][2]['e2e_cold_pass_docs_per_s'])[args.medlink_passes // 2]:.0f} "
                    f"({k} linking)" for k in LINKINGS)
        + "); FastHPOCR = mean of "
        f"{args.passes} passes of `HPOAnnotator.annotate` over the {n} documents, index loaded "
        "(single Python thread).",
        f"- docs/s whole run: medlink = wall time of `medlink annotate --input-format pubtator` over "
        f"the corpus once and repeated {args.repeat}× (process start, index and model loading, "
        f"PubTator output included); FastHPOCR = its index load ({load_s:.1f} s, a JSON file) "
        f"plus 1 or {args.repeat} passes, in process (Python start-up not included).",
        f"- FastHPOCR index: default `indexConfig` (all HPO branches, no 3-letter acronyms), "
        f"built once in {build_note} and cached under `target/fasthpocr-index/`.",
    ])
    print(body)
    if args.write:
        write_benchmarks(body)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "corpus": CORPUS_SPEC,
            "documents": n,
            "cpu": cpu,
            "cores": os.cpu_count(),
            "hp_obo_sha256": sha256(HPO_OBO),
            "fasthpocr_version": version,
            "medlink_version": medlink_version,
            "git_commit": commit,
            "fasthpocr_index": str(index_file.relative_to(ROOT)),
            "fasthpocr_index_build_s": build_s,
            "fasthpocr_index_load_s": load_s,
            "fasthpocr": fast,
            "medlink": {k: v[2] | {"report": v[0]} for k, v in ours.items()},
            "rows": rows,
            "analysis": analysis,
        }, indent=2, default=str) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)} and BENCHMARKS.md", file=sys.stderr)
    else:
        (WORK / "analysis.json").write_text(json.dumps(analysis, indent=2) + "\n")
    print(f"error analysis: {'benches/results/hpo_ner.json' if args.write else WORK / 'analysis.json'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
