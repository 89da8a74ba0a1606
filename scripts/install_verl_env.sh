#!/usr/bin/env bash
# Creates .venv-verl: the environment of the verl integration tests (verl 0.9.1 pins transformers<5.11).
# It layers verl 0.9.1, transformers 5.10.4 and their extra dependencies over .venv (made by scripts/install.sh), so
# polyenv and the rest come from .venv and only what verl needs differently is installed here. Idempotent.
#   bash scripts/install_verl_env.sh && .venv-verl/bin/python -m pytest tests/test_integration_verl.py -q
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BASE=${POLYENV_BASE_VENV:-.venv}
[[ -x "$BASE/bin/python" ]] || bash scripts/install.sh
if [[ ! -x .venv-verl/bin/python ]]; then
  "$PY" -m venv .venv-verl
fi
MAIN_SITE=$("$BASE/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
VERL_SITE=$(.venv-verl/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# Processed like a site directory (its .pth files too, so the editable polyenv install is found), after our own.
echo "import site; site.addsitedir('$MAIN_SITE')" > "$VERL_SITE/_polyenv_base_venv.pth"
# kernels: the base venv's transformers needs kernels >= 0.19, whose LayerRepository insists on a revision that
# transformers 5.10.4 does not pass (importing its models fails); 5.10.4 declares kernels 0.12.x.
.venv-verl/bin/python -m pip install -q "torch==2.13.0" "verl==0.9.1" "transformers==5.10.4" "tensordict==0.10.0" \
  "kernels==0.12.3" \
  "ray[default]==2.60.0" cachetools uvicorn fastapi 2>&1 | grep -v -e "^WARNING: Location" -e "requires" -e "incompatible" -e "dependency conflicts" -e "dependency resolver" || true
# polyenv itself (no dependencies: they come from the base venv), so its verl plugin entry point is registered here.
.venv-verl/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
.venv-verl/bin/python -c "import verl, transformers, torch; print('verl', verl.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
# verl's Hydra pins antlr4-python3-runtime 4.9.x (math-verify's default extra names 4.13.2); latex2sympy2_extended ships
# a LaTeX parser for each runtime, so grading must still work: check one equivalence only the LaTeX parser can decide.
.venv-verl/bin/python - <<'PY'
from importlib.metadata import version
from math_verify import parse, verify
assert verify(parse(r"$\frac{\sqrt{3}}{2}$", parsing_timeout=None), parse(r"$\frac{1}{2}\sqrt{3}$", parsing_timeout=None),
              timeout_seconds=None), "math-verify cannot parse LaTeX in .venv-verl"
print("math-verify LaTeX grading ok with antlr4-python3-runtime", version("antlr4-python3-runtime"))
PY
