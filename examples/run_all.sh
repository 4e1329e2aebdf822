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
echo "all examples passed"
