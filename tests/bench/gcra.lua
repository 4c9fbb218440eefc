-- The ceiling peer: a minimal GCRA decision in one script call, on Redis's clock.
-- KEYS[1] = the key; ARGV[1] = emission interval (us); ARGV[2] = burst (requests).
-- Stores the theoretical arrival time (us) with a TTL; returns {allowed, retry_after_us}.
-- run.sh calls it as one pipelined EVALSHA per decision with redis-benchmark.
local emission = tonumber(ARGV[1])
local tolerance = emission * tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, 0}
