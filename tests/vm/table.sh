#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The README's "Tested kernels" table, in Markdown, from the kernel
# matrix's results (tests/vm/matrix.sh).
# Usage: tests/vm/table.sh [RESULTS_TSV]   (default: build/vm/results.tsv)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tsv=${1:-$VM_DIR/results.tsv}
[ -s "$tsv" ] || vm_die "no $tsv: run tests/vm/matrix.sh (make test-kernels) first"
head -n 1 "$tsv" | grep -q '^kernel	distribution	result	refusal' ||
	vm_die "$tsv: not a results file of tests/vm/matrix.sh"

echo '## Tested kernels'
echo
echo "Measured by \`make test-kernels\` on $(date -u -r "$tsv" +%Y-%m-%d): the end-to-end suite on each"
echo 'kernel, and the errno an application sees from a connect the breaker refuses.'
echo
echo '| kernel | distribution | result | refusal errno |'
echo '| --- | --- | --- | --- |'
awk -F'\t' 'NR > 1 { printf "| `%s` | %s | %s | %s |\n", $1, $2, $3, ($4 == "-" ? "n/a" : "`" $4 "`") }' "$tsv"
