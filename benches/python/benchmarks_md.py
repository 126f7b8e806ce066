"""Replaces one generated block of BENCHMARKS.md, shared by benchmarks.py and compare.py."""
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"


def replace_block(name, body):
    """Writes `body` between `<!-- NAME:BEGIN -->` and `<!-- NAME:END -->`."""
    start, end = f"<!-- {name}:BEGIN -->", f"<!-- {name}:END -->"
    head, rest = BENCHMARKS.read_text().split(start, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def cpu_name():
    """The CPU model from /proc/cpuinfo (ratios differ between CPU families: say which)."""
    import platform

    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
