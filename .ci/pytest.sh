#!/usr/bin/env bash
# Runs the test suite. pytest exits 5 when it collected no tests: that must fail loudly here
# (a suite that silently runs nothing is a broken suite), with its own message.
set -uo pipefail
cd "$(dirname "$0")/.."
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1
.venv/bin/python -m pytest -q -m "not gpu" "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "harness CI: pytest collected no tests; the suite is missing or misconfigured" >&2
  exit 1
fi
exit "$status"
