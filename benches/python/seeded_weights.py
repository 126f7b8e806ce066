"""Weights of the tiny test checkpoints, drawn from a seed instead of committed as binaries.

A fixture directory under tests/fixtures holds `weights.json` in place of `model.safetensors`:

    {"generator": "splitmix64-uniform/v1", "seed": S,
     "tensors": [{"name": N, "shape": [...], "center": C, "spread": R}, ...]}

Tensor i (in list order) is filled, row-major, with `C + R * (2u - 1)` where u = (x >> 40) *
2^-24 for successive outputs x of SplitMix64 derived from (S, 0, i), all in f32 — the same
generator and arithmetic as medlink's `rng::SplitMix64::derive` and the tests' materialiser
(tests/it/common.rs), so both sides build bit-identical weights.

    fill(model, spread_of, seed) -> manifest   # draws every parameter of a torch model
    materialize(name) -> Path                  # a loadable copy of tests/fixtures/NAME
"""
import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = "splitmix64-uniform/v1"
M = (1 << 64) - 1


def _next(state):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)


def _derive(seed, stream, index):
    state, first = _next((seed ^ ((stream * 0xA0761D6478BD642F) & M)) & M)
    return (first ^ ((index * 0xE7037ED1A0B428DB) & M)) & M


def draw(seed, index, count, center, spread):
    """`count` f32 values of tensor `index`."""
    state = _derive(seed, 0, index)
    raw = np.empty(count, dtype=np.uint64)
    for k in range(count):
        state, raw[k] = _next(state)
    u = (raw >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return np.float32(center) + np.float32(spread) * (np.float32(2.0) * u - np.float32(1.0))


def generate(manifest):
    """{name: f32 array} of a manifest."""
    assert manifest["generator"] == GENERATOR, manifest["generator"]
    out = {}
    for i, t in enumerate(manifest["tensors"]):
        n = int(np.prod(t["shape"])) if t["shape"] else 1
        out[t["name"]] = draw(manifest["seed"], i, n, t["center"], t["spread"]).reshape(t["shape"])
    return out


def fill(model, spread_of, seed=0):
    """Overwrites every entry of `model.state_dict()` (sorted by name) with drawn values;
    `spread_of(name) -> (center, spread)`. Returns the manifest."""
    import torch

    state = model.state_dict()
    tensors = [{"name": name, "shape": list(state[name].shape), **dict(zip(("center", "spread"), spread_of(name)))}
               for name in sorted(state)]
    manifest = {"generator": GENERATOR, "seed": seed, "tensors": tensors}
    values = generate(manifest)
    with torch.no_grad():
        for name, tensor in state.items():
            tensor.copy_(torch.from_numpy(values[name]))
    return manifest


def check_saved(model_dir, manifest):
    """The saved weights are exactly the manifest's, bit for bit."""
    from safetensors.numpy import load_file

    saved = load_file(str(model_dir / "model.safetensors"))
    drawn = generate(manifest)
    assert sorted(saved) == sorted(drawn), "saved tensors differ from the manifest's"
    for key, value in drawn.items():
        assert np.array_equal(saved[key], value), key


def publish(built, fixture, manifest):
    """Copies a built directory into tests/fixtures, weights as their manifest."""
    shutil.rmtree(fixture, ignore_errors=True)
    fixture.mkdir(parents=True)
    for f in built.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, fixture / f.name)
    (fixture / "weights.json").write_text(json.dumps(manifest) + "\n")


def materialize(name):
    """tests/fixtures/NAME with its `model.safetensors` drawn from `weights.json`, under
    target/fixtures/ (rebuilt when the manifest changes)."""
    from safetensors.numpy import save_file

    source = ROOT / "tests" / "fixtures" / name
    manifest_text = (source / "weights.json").read_text()
    out = ROOT / "target" / "fixtures" / name
    stamp = out / ".weights.json"
    if stamp.is_file() and stamp.read_text() == manifest_text:
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    save_file(generate(json.loads(manifest_text)), str(out / "model.safetensors"))
    (out / "weights.json").unlink()
    stamp.write_text(manifest_text)
    return out
