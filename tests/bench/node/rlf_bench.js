#!/usr/bin/env node
// Benchmark peer: rate-limiter-flexible's RateLimiterRedis on one ioredis connection, or
// on ioredis's Cluster client (--cluster).
//
//   node rlf_bench.js --port P [--host 127.0.0.1] [--seconds 5] [--inflight 64]
//                     [--keys 100000] [--points 1000000000] [--duration 1]
//                     [--autopipeline] [--name NAME] [--cluster HOST:PORT,...]
//
// Keeps --inflight consume() calls in flight (closed loop: each settled call starts the
// next one), each on a key drawn uniformly from --keys, for --seconds after a one-second
// warm-up, and prints one JSON object like rlimit-bench --json: decisions_per_s, allowed,
// denied, errors, p50_us, p99_us, p999_us (latency of each consume() call).
// --points is large so that nothing is denied by default (a denial in rate-limiter-flexible
// is a rejected promise with a RateLimiterRes, counted as denied, not as an error).
// --autopipeline turns on ioredis's enableAutoPipelining (off by default in ioredis).
// --cluster uses `new Redis.Cluster([...])` with those seed nodes instead of one connection
// (--host and --port are then unused); the client routes each key to its slot's master.
'use strict';

const Redis = require('ioredis');
const { RateLimiterRedis, RateLimiterRes } = require('rate-limiter-flexible');

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1', port: 6379, seconds: 5, inflight: 64, keys: 100000,
    points: 1000000000, duration: 1, autopipeline: false, name: 'rate-limiter-flexible',
    warmup: 1, cluster: null,
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--host': opts.host = next(); break;
      case '--port': opts.port = Number(next()); break;
      case '--seconds': opts.seconds = Number(next()); break;
      case '--warmup': opts.warmup = Number(next()); break;
      case '--inflight': opts.inflight = Number(next()); break;
      case '--keys': opts.keys = Number(next()); break;
      case '--points': opts.points = Number(next()); break;
      case '--duration': opts.duration = Number(next()); break;
      case '--autopipeline': opts.autopipeline = true; break;
      case '--name': opts.name = next(); break;
      case '--cluster': opts.cluster = parseNodes(next()); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return opts;
}

// 'HOST:PORT,HOST:PORT' -> [{host, port}, ...]
function parseNodes(text) {
  return text.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    const port = Number(hp.slice(i + 1));
    if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error(`--cluster: not HOST:PORT: ${hp}`);
    }
    return { host: hp.slice(0, i), port };
  });
}

// One ioredis client: a single connection, or a Cluster client on the seed nodes.
async function connect(opts) {
  if (opts.cluster) {
    const cluster = new Redis.Cluster(opts.cluster, {
      enableAutoPipelining: opts.autopipeline, lazyConnect: true,
      redisOptions: { maxRetriesPerRequest: 1 },
    });
    await cluster.connect();
    await cluster.ping();
    return cluster;
  }
  const redis = new Redis({
    host: opts.host, port: opts.port, enableAutoPipelining: opts.autopipeline,
    maxRetriesPerRequest: 1, lazyConnect: true,
  });
  await redis.connect();
  await redis.ping();
  return redis;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, idx)];
}

async function main() {
  const opts = parseArgs(process.argv);
  const redis = await connect(opts);
  const limiter = new RateLimiterRedis({
    storeClient: redis, keyPrefix: 'rlfbench', points: opts.points, duration: opts.duration,
  });

  let measuring = false;
  let stopping = false;
  let allowed = 0;
  let denied = 0;
  let errors = 0;
  let firstError = null;
  const latencies = []; // microseconds, measured calls only

  const worker = async () => {
    while (!stopping) {
      const key = `key-${Math.floor(Math.random() * opts.keys)}`;
      const t0 = process.hrtime.bigint();
      let outcome;
      try {
        await limiter.consume(key, 1);
        outcome = 0;
      } catch (e) {
        if (e instanceof RateLimiterRes) {
          outcome = 1;
        } else {
          outcome = 2;
          if (!firstError) firstError = String(e && e.message ? e.message : e);
        }
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
    allowed, denied, errors,
    p50_us: percentile(latencies, 0.5),
    p99_us: percentile(latencies, 0.99),
    p999_us: percentile(latencies, 0.999),
    seconds: Number(elapsed.toFixed(3)),
    in_flight: opts.inflight,
    keys: opts.keys,
    auto_pipelining: opts.autopipeline,
    cluster: opts.cluster ? opts.cluster.length : undefined,
    versions: {
      node: process.version,
      'rate-limiter-flexible': require('rate-limiter-flexible/package.json').version,
      ioredis: require('ioredis/package.json').version,
    },
  };
  if (firstError) out.first_error = firstError;
  for (const k of ['p50_us', 'p99_us', 'p999_us']) {
    if (out[k] !== null) out[k] = Math.round(out[k]);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`rlf_bench: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
