#!/usr/bin/env bash
# Run every example; exit non-zero as soon as one fails.
#
# The interpreter is $PYTHON if set, else the active virtualenv's, else the repository's
# .venv, else python3 from PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
    python="$VIRTUAL_ENV/bin/python"
elif [[ -x "$root/.venv/bin/python" ]]; then
    python="$root/.venv/bin/python"
else
    python="python3"
fi

cd "$root"
for script in examples/[0-9][0-9]_*.py; do
    echo "==> $script"
    "$python" "$script"
done
# The README's main job: the digits sweep through the CLI, then its paired comparison.
if "$python" -c "import sklearn, scipy" 2>/dev/null; then
    echo "==> crucible-actors run examples/digits.toml"
    store="$(mktemp -d)"
    trap 'rm -rf "$store"' EXIT
    "$python" -m crucible_actors run examples/digits.toml --store "sqlite:///$store/digits.db" \
        --no-progress | tee "$store/out.txt"
    sweep="$(sed -n 's/^compare the points: crucible-actors compare --sweep //p' "$store/out.txt")"
    "$python" -m crucible_actors compare --sweep "$sweep" --pair-by id \
        --store "sqlite:///$store/digits.db"
else
    echo "==> examples/digits.toml skipped: needs scikit-learn (pip install -e '.[examples]')"
fi
# Smoke test of the data benchmark on small sizes (~7 s; its ratios are not the figures).
echo "==> bench/data.py --quick"
"$python" bench/data.py --quick
echo "all examples passed"
