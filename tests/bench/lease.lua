-- The leases peer: the sorted-set semaphore users write today without rlimitd, one call
-- per ACQUIRE (the RELEASE is one ZREM of the member). Expiry on Redis's clock.
-- KEYS[1] = the key's sorted set; ARGV[1] = limit (slots held at once);
-- ARGV[2] = lease (ms); ARGV[3] = the member (a lease id unique to its holder).
-- Trims expired members, counts the rest, adds the member scored by its expiry if under
-- the limit and keeps the set alive until its last lease expires. Returns 1 (acquired)
-- or 0 (denied). tests/bench/node/lease_bench.js and tests/bench/lease_redispy.py call it.
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
