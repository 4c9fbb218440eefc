#!/usr/bin/env node
// Benchmark peer for leases: the sorted-set semaphore users write today without rlimitd,
// on one ioredis connection. One pair = ACQUIRE (tests/bench/lease.lua, run through
// ioredis's defineCommand: EVALSHA, EVAL once if the script is not loaded) and, when it
// was acquired, RELEASE (one ZREM of the member): one call each, as a request handler does.
//
//   node lease_bench.js --port P [--host 127.0.0.1] [--seconds 5] [--warmup 1]
//                       [--inflight 64] [--keys 100000] [--limit 10000] [--lease-ms 30000]
//                       [--autopipeline] [--name NAME] [--script PATH]
//
// Keeps --inflight pairs in flight (closed loop: a finished pair starts the next), each on
// a key drawn uniformly from --keys, for --seconds after --warmup seconds, then prints one
// JSON object like rlimit-bench --json: decisions_per_s (= pairs_per_s: one ACQUIRE and
// its RELEASE count once), allowed (acquired and released), denied, errors, p50_us, p99_us,
// p999_us (the latency of a whole pair), release_misses (a ZREM that found no member:
// the lease was lost; counted as errors too). The member is a per-process counter (the
// cheapest unique id; a real holder would pay for a UUID). Before measuring, a self-test
// on one key with limit 2 checks that the script admits 2, denies the 3rd and admits it
// after a release; a failure exits 1 with no figures. --autopipeline turns on ioredis's
// enableAutoPipelining (commands issued in one event-loop turn go in one write). --script
// replaces tests/bench/lease.lua (tests/e2e/test_bench_leases.sh gives it a wrong one).
'use strict';

const fs = require('fs');
const path = require('path');
const Redis = require('ioredis');

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1', port: 6379, seconds: 5, warmup: 1, inflight: 64, keys: 100000,
    limit: 10000, leaseMs: 30000, autopipeline: false, name: 'ioredis_lease_script',
    script: path.join(__dirname, '..', 'lease.lua'),
  };
  const numeric = {
    '--port': 'port', '--seconds': 'seconds', '--warmup': 'warmup', '--inflight': 'inflight',
    '--keys': 'keys', '--limit': 'limit', '--lease-ms': 'leaseMs',
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a in numeric) {
      const v = Number(next());
      if (!Number.isFinite(v) || v < 0) throw new Error(`bad value for ${a}`);
      opts[numeric[a]] = v;
    } else if (a === '--host') opts.host = next();
    else if (a === '--name') opts.name = next();
    else if (a === '--script') opts.script = next();
    else if (a === '--autopipeline') opts.autopipeline = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (opts.inflight < 1 || opts.keys < 1 || opts.limit < 1 || opts.leaseMs < 1) {
    throw new Error('--inflight, --keys, --limit and --lease-ms must be at least 1');
  }
  return opts;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, idx)];
}

// The script must admit `limit` leases on a key, deny one more, and admit it once a
// lease is released; the key is gone afterwards.
async function selfTest(redis) {
  const key = `leasebench:selftest:${process.pid}`;
  const got = [];
  for (const m of ['a', 'b', 'c']) got.push(await redis.leaseAcquire(key, 2, 60000, m));
  got.push(await redis.zrem(key, 'a'));
  got.push(await redis.leaseAcquire(key, 2, 60000, 'c'));
  await redis.del(key);
  if (got.join(',') !== '1,1,0,1,1') {
    throw new Error(`lease script self-test: expected 1,1,0,1,1, got ${got.join(',')}`);
  }
}

async function main() {
  const opts = parseArgs(process.argv);
  const redis = new Redis({
    host: opts.host, port: opts.port, enableAutoPipelining: opts.autopipeline,
    maxRetriesPerRequest: 1, lazyConnect: true,
  });
  redis.defineCommand('leaseAcquire', {
    numberOfKeys: 1, lua: fs.readFileSync(opts.script, 'utf8'),
  });
  await redis.connect();
  await redis.ping();
  await selfTest(redis);

  let measuring = false;
  let stopping = false;
  let allowed = 0;
  let denied = 0;
  let errors = 0;
  let releaseMisses = 0;
  let firstError = null;
  let counter = 0;
  const prefix = `${process.pid}:`;
  const latencies = []; // microseconds, measured pairs only

  const pair = async () => {
    const key = `leasebench:key-${Math.floor(Math.random() * opts.keys)}`;
    const member = prefix + (counter++);
    if ((await redis.leaseAcquire(key, opts.limit, opts.leaseMs, member)) !== 1) return 1;
    if ((await redis.zrem(key, member)) !== 1) {
      releaseMisses++;
      throw new Error(`ZREM ${key} ${member} removed nothing: the lease was lost`);
    }
    return 0;
  };
  const worker = async () => {
    while (!stopping) {
      const t0 = process.hrtime.bigint();
      let outcome;
      try {
        outcome = await pair();
      } catch (e) {
        outcome = 2;
        if (!firstError) firstError = String(e && e.message ? e.message : e);
      }
      if (measuring) {
        latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
        if (outcome === 0) allowed++;
        else if (outcome === 1) denied++;
        else errors++;
      }
    }
  };

  const workers = [];
  for (let i = 0; i < opts.inflight; i++) workers.push(worker());
  await new Promise((r) => setTimeout(r, opts.warmup * 1000));
  measuring = true;
  const start = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  stopping = true;
  await Promise.all(workers);
  redis.disconnect();

  latencies.sort((a, b) => a - b);
  const total = allowed + denied + errors;
  const out = {
    name: opts.name,
    decisions_per_s: Math.round(total / elapsed),
    pairs_per_s: Math.round(total / elapsed),
    allowed, denied, errors, release_misses: releaseMisses,
    p50_us: percentile(latencies, 0.5),
    p99_us: percentile(latencies, 0.99),
    p999_us: percentile(latencies, 0.999),
    seconds: Number(elapsed.toFixed(3)),
    in_flight: opts.inflight,
    keys: opts.keys,
    limit: opts.limit,
    lease_ms: opts.leaseMs,
    auto_pipelining: opts.autopipeline,
    versions: { node: process.version, ioredis: require('ioredis/package.json').version },
  };
  if (firstError) out.first_error = firstError;
  for (const k of ['p50_us', 'p99_us', 'p999_us']) {
    if (out[k] !== null) out[k] = Math.round(out[k]);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`lease_bench: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
