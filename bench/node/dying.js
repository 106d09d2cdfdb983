// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// kbreaker benchmarks, item 6: an in-process breaker (opossum) vs kbreaker with a plain client.
//
//   node dying.js overhead
//     Per-call cost of opossum's fire() around a no-op async function vs calling it
//     directly (no network): "direct_ns= opossum_ns= added_ns=".
//   node dying.js plain|opossum PORT TIMES_FILE
//     A server on 127.0.0.1:PORT in this process answers LIVE calls (one call = a TCP
//     connect, closed at once), then dies (stops listening: RST). The client keeps calling
//     until MAX_AFTER calls or MAX_MS after the death. Prints medians of the call latency
//     while the server lives and after the trip, and for opossum how many calls reached
//     the dead peer. Completion times of the calls after the death (ms since the death)
//     go to TIMES_FILE, one a line: kbreaker's caller cannot tell a refusal by the
//     breaker from the peer's RST, so the harness counts those from /metrics.
'use strict';
const net = require('net');

const LIVE = 200;
const MAX_AFTER = 3000;
const MAX_MS = 10000;

function connectOnce(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(); });
    s.once('error', (err) => { s.destroy(); reject(err); });
  });
}

const nowNs = () => process.hrtime.bigint();
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[s.length >> 1] : 0; };

async function overhead() {
  const CircuitBreaker = require('opossum');
  const fn = async () => 1;
  const breaker = new CircuitBreaker(fn, { timeout: false });
  const N = 100000, rounds = 7, direct = [], wrapped = [];
  for (let r = 0; r < rounds; r++) {
    let t0 = nowNs();
    for (let i = 0; i < N; i++) await fn();
    direct.push(Number(nowNs() - t0) / N);
    t0 = nowNs();
    for (let i = 0; i < N; i++) await breaker.fire();
    wrapped.push(Number(nowNs() - t0) / N);
  }
  breaker.shutdown();
  const d = median(direct), w = median(wrapped);
  console.log(`direct_ns=${d.toFixed(0)} opossum_ns=${w.toFixed(0)} added_ns=${(w - d).toFixed(0)}`);
}

async function dying(mode, port, timesFile) {
  const fs = require('fs');
  const server = net.createServer((c) => c.destroy());
  await new Promise((res) => server.listen(port, '127.0.0.1', res));
  let call = () => connectOnce(port);
  let breaker = null;
  if (mode === 'opossum') {
    const CircuitBreaker = require('opossum');
    // Trip on failures: 50% errors over the rolling window (10 s), at least 5 calls.
    breaker = new CircuitBreaker(connectOnce, {
      timeout: false, errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeout: 3600000,
    });
    call = () => breaker.fire(port);
  }
  const live = [];
  for (let i = 0; i < LIVE; i++) {
    const t0 = nowNs();
    await call();
    live.push(Number(nowNs() - t0) / 1000);
  }
  await new Promise((res) => server.close(res));
  const tDie = nowNs();
  const times = [], lat = [];
  let reached = 0, fast = 0, other = 0, firstFastMs = -1;
  for (let i = 0; i < MAX_AFTER && Number(nowNs() - tDie) / 1e6 < MAX_MS; i++) {
    const t0 = nowNs();
    try {
      await call();
      other++;
    } catch (err) {
      if (err.code === 'EOPENBREAKER') {
        fast++;
        if (firstFastMs < 0) firstFastMs = Number(nowNs() - tDie) / 1e6;
      } else if (err.code === 'ECONNREFUSED') {
        reached++;
      } else {
        other++;
      }
    }
    const t1 = nowNs();
    lat.push(Number(t1 - t0) / 1000);
    times.push((Number(t1 - tDie) / 1e6).toFixed(3));
  }
  fs.writeFileSync(timesFile, times.join('\n') + '\n');
  if (breaker) breaker.shutdown();
  // The last 1000 calls are after any trip: their median is the fail-fast latency.
  const tail = lat.slice(-1000);
  console.log(`mode=${mode} live_p50_us=${median(live).toFixed(1)} after_calls=${times.length} ` +
    `fail_p50_us=${median(tail).toFixed(1)} reached_dead_peer=${mode === 'opossum' ? reached : 'metrics'} ` +
    `opossum_fast=${fast} first_fast_ms=${firstFastMs.toFixed(3)} other=${other}`);
}

const [mode, port, timesFile] = process.argv.slice(2);
(mode === 'overhead' ? overhead() : dying(mode, Number(port), timesFile)).catch((err) => {
  console.error(err);
  process.exit(1);
});
