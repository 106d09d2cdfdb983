#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Seconds a blocking connect() waits on a black-holed peer, from the kernel's
# SYN backoff. In SYN_SENT the give-up point is time-based
# (retransmits_timed_out -> tcp_model_timeout): (2^(RETRIES+1) - 1) x 1 s.
# It is checked when the retransmit timer fires: the initial RTO is 1 s; the
# first LINEAR timeouts keep it (tcp_syn_linear_timeouts, Linux >= 6.5),
# later ones double it. So the connect fails at the first firing at or past
# the model time. RETRIES=6: 127 s without linear timeouts, 131 s with 4.
# RETRIES=1: 3 s either way (measured by make bench).
# Usage: syn_timeout.sh RETRIES [LINEAR]
awk -v r="${1:-6}" -v l="${2:-0}" 'BEGIN {
	limit = 2 ^ (r + 1) - 1; rto = 1; t = 0
	for (n = 1; n < 64; n++) {
		t += rto
		if (t >= limit) break
		if (n > l) { rto *= 2; if (rto > 120) rto = 120 }
	}
	print t
}'
