"""Check that each engine extra resolves with the pinned torch and prints the versions pip would install.

    python scripts/check_extras.py                 # [trl], [vllm], [verl] and all three together
    python scripts/check_extras.py --extras trl    # just one

For each extra it runs ``pip install --dry-run --report`` against the current environment (nothing is installed) and
fails when pip cannot resolve it, when it would replace torch, or when it would move transformers outside the range
that extra is known to need (TRL: unchanged; vLLM 0.31.0: >= 5.10.4, < 5.18; verl 0.9.1: >= 5.5.3, < 5.11).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
SHOWN = ("torch", "transformers", "trl", "vllm", "verl", "accelerate", "ray", "tensordict", "numpy", "xgrammar",
         "hydra-core", "omegaconf", "antlr4-python3-runtime")
# Packages an extra must not backtrack below: verl imports Hydra 1.3 / OmegaConf 2.3 APIs, and a pin on antlr4 4.13.2
# once made pip pick hydra-core 0.11.3 and omegaconf 1.4.1 (releases that do not depend on antlr) for .[verl].
MINIMUM = {"hydra-core": "1.3", "omegaconf": "2.3"}
# extra -> (lowest, highest-exclusive) transformers version it may bring; None = must stay as installed
TRANSFORMERS_RANGE: dict[str, tuple[str, str] | None] = {
    "trl": None,
    "vllm": ("5.10.4", "5.18"),
    "verl": ("5.5.3", "5.11"),
    "trl,vllm,verl": ("5.10.4", "5.11"),
}


def resolve(extra: str) -> dict[str, str]:
    """Package -> version that ``pip install .[extra]`` would install (changes only)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--report", str(report),
               f"{REPO}[{extra}]"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"[{extra}] does not resolve:\n{out.stderr[-3000:]}")
        data = json.loads(report.read_text())
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in data["install"]}


def check(extra: str, installed: dict[str, str]) -> list[str]:
    changes = resolve(extra)
    problems = []
    torch = changes.get("torch")
    if torch is not None and Version(torch).base_version != Version(installed["torch"]).base_version:
        problems.append(f"replaces torch {installed['torch']} with {torch}")
    allowed = TRANSFORMERS_RANGE.get(extra)
    new = changes.get("transformers")
    if new is not None:
        if allowed is None:
            problems.append(f"replaces transformers {installed['transformers']} with {new}")
        elif not Version(allowed[0]) <= Version(new) < Version(allowed[1]):
            problems.append(f"brings transformers {new}, outside [{allowed[0]}, {allowed[1]})")
    for name, lowest in MINIMUM.items():  # a resolver that backtracks to an ancient release "resolves" but breaks
        if name in changes and Version(changes[name]) < Version(lowest):
            problems.append(f"backtracks {name} to {changes[name]} (< {lowest})")
    shown = ", ".join(f"{name} {changes.get(name, installed.get(name, '-'))}"
                      + ("" if name in changes else " (kept)") for name in SHOWN
                      if name in changes or name in ("torch", "transformers"))
    print(f"[{extra}] resolves ({len(changes)} to install): {shown}" + (f"  PROBLEMS: {problems}" if problems else ""))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extras", nargs="*", default=list(TRANSFORMERS_RANGE), help="extras to check")
    args = parser.parse_args()
    from importlib.metadata import version

    installed = {name: version(name) for name in ("torch", "transformers")}
    print(f"installed: torch {installed['torch']}, transformers {installed['transformers']}")
    problems = [p for extra in args.extras for p in check(extra, installed)]
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
