#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The README's "Tested kernels" table, in Markdown, from the kernel
# matrix's results (tests/vm/matrix.sh): what goes between the README's
# kernels:begin and kernels:end markers.
# Usage: tests/vm/table.sh [RESULTS_TSV] [COMMIT]
#   (default: build/vm/results.tsv, and this checkout's HEAD)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tsv=${1:-$VM_DIR/results.tsv}
commit=${2:-$(git -C "$VM_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)}
[ -s "$tsv" ] || vm_die "no $tsv: run tests/vm/matrix.sh (make test-kernels) first"
head -n 1 "$tsv" | grep -q '^kernel	distribution	result	refusal	e2e' ||
	vm_die "$tsv: not a results file of tests/vm/matrix.sh"

echo "Last matrix run, at commit $commit, $(date -u -r "$tsv" +%Y-%m-%d)."
echo
echo '| kernel | distribution | result | end-to-end tests | refusal errno |'
echo '| --- | --- | --- | --- | --- |'
awk -F'\t' 'NR > 1 {
	e2e = $5
	if ($3 == "unsupported") e2e = "start-up check: refused, nothing attached"
	else if (e2e ~ /^run by/) e2e = "whole suite (make test-e2e)"
	else if (e2e == "-") e2e = "no result"
	printf "| `%s` | %s | %s | %s | %s |\n", $1, $2, $3, e2e, ($4 == "-" ? "n/a" : "`" $4 "`")
}' "$tsv"
