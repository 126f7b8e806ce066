"""The Python reference environment: one virtual environment under target/ for every reference
script (transformers, sentence-transformers, faiss, FastAPI, FastHPOCR ...).

A script calls `refenv.ensure(["transformers", "torch", ...])` first thing: if it is not yet
running inside `target/pyref`, the venv is created (once), the missing packages are installed
from PyPI, and the script re-executes itself with the venv's interpreter and the same arguments.
Nothing is installed into the system Python.
"""
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MEDLINK_PYREF", ROOT / "target" / "pyref"))

# Import name of each PyPI distribution whose import name differs from it.
IMPORT_NAMES = {
    "sentence-transformers": "sentence_transformers",
    "faiss-cpu": "faiss",
    "scikit-learn": "sklearn",
    "uvicorn[standard]": "uvicorn",
}


def _python():
    return VENV / "bin" / "python"


def _missing(packages):
    missing = []
    for package in packages:
        name = IMPORT_NAMES.get(package, package.split("==")[0].split("[")[0].replace("-", "_"))
        if importlib.util.find_spec(name) is None:
            missing.append(package)
    return missing


def ensure(packages):
    """Run the calling script inside the reference venv with `packages` installed."""
    inside = Path(sys.prefix).resolve() == VENV.resolve()
    if inside:
        missing = _missing(packages)
        if missing:
            print(f"refenv: installing {' '.join(missing)} into {VENV}", file=sys.stderr)
            subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *missing])
        return
    if not _python().exists():
        print(f"refenv: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    os.execv(str(_python()), [str(_python()), *sys.argv])
