#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Put a run's results table into BENCHMARKS.md between the bench markers.
# Usage: bench/fill.sh RESULTS.md BENCHMARKS.md
set -eu
res=$1 doc=$2
grep -q '^<!-- bench:begin -->$' "$doc" && grep -q '^<!-- bench:end -->$' "$doc" ||
	{ echo "fill: no bench markers in $doc" >&2; exit 1; }
tmp=$(mktemp)
awk -v res="$res" '
	/^<!-- bench:begin -->$/ { print; while ((getline l < res) > 0) print l; skip = 1; next }
	/^<!-- bench:end -->$/ { skip = 0 }
	!skip { print }
' "$doc" > "$tmp"
cat "$tmp" > "$doc"
rm -f "$tmp"
echo "  BENCH    $doc updated from $res"
