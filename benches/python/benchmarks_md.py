"""Helpers shared by the bench scripts: replacing one generated block of BENCHMARKS.md,
naming the CPU, reading medlink's throughput lines."""
import re
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"


def replace_block(name, body):
    """Writes `body` between `<!-- NAME:BEGIN -->` and `<!-- NAME:END -->`."""
    start, end = f"<!-- {name}:BEGIN -->", f"<!-- {name}:END -->"
    head, rest = BENCHMARKS.read_text().split(start, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def stale_index(index_dir, medlink):
    """Whether the bench index in `index_dir` must be (re)built: it is missing, or older than
    the `medlink` binary. Bench scripts keep their indexes between runs, and one built by an
    older binary would report that binary's index code and vectors; a stale one is removed so
    the build starts clean."""
    import shutil

    manifest = Path(index_dir) / "manifest.json"
    if manifest.is_file() and manifest.stat().st_mtime >= Path(medlink).stat().st_mtime:
        return False
    shutil.rmtree(index_dir, ignore_errors=True)
    return True


def throughput(output, unit):
    """The rate in a medlink throughput line ("linked 569 mentions in 0.67s (851 mentions/s)"),
    `unit` being e.g. "mentions/s"; exits naming the output when there is none."""
    match = re.search(r"\(([0-9.]+) " + re.escape(unit), output)
    if not match:
        sys.exit(f"no {unit} throughput line in:\n{output}")
    return float(match.group(1))


def cpu_name():
    """The CPU model from /proc/cpuinfo and its widest vector extension (ratios differ between
    CPU families, and one model name covers machines with and without AVX-512: say which)."""
    import platform

    model, flags = None, set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("asimd", "NEON")):
        if flag in flags:
            return f"{model} ({name})"
    return model
