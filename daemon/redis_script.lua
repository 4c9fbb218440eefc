-- redis_script.lua: the script that decides batches of items inside Redis (Lua 5.1,
-- as Redis runs it). The build checks it with luac5.1 -p, strips its comments and
-- leading indentation (daemon/redis_script.awk; each line stays in place, so the line
-- numbers in Redis's error messages are this file's) and compiles the result into the
-- daemon as rl_redis_script (daemon/redis_script.c). No long strings or long comments
-- (double square brackets): the stripper reads line by line and refuses them.
--
-- One EVALSHA decides many store batches (submits), one after the other, at one
-- instant: each batch is all-or-nothing within itself (CHECK consumes only if every
-- rate of every item allows), batches are independent, and a later batch sees what an
-- earlier one consumed. The algorithms are those of algo.c, figure for figure: the
-- cell_* functions mirror its cell_ops, the log_* functions the sliding log. Lua
-- numbers are doubles, exact for integers below 2^53 (epoch microseconds are about
-- 2^51); the one product that can exceed it (the sliding counter's weighting) goes
-- through muldivmod.
--
-- Arguments (all integers in decimal):
--   KEYS      per rate of every item of every batch, in order:
--             <prefix>{<policy>:<key>}:<rate index> (see redis_batch.h), and after a
--             sliding log's that of its companion, the same name followed by
--             RL_REDIS_COMPANION_MARK (same hash tag, so same Redis Cluster slot)
--   ARGV[1]   the decision time in microseconds, or 0 to use Redis's TIME (always 0
--             outside tests)
--   ARGV[2]   S, the number of limit sets; then per set: the rate count R, then per
--             rate RATE_ARGS integers: algorithm (ALGO_*), limit, period_us, burst
--   then      B, the number of batches; then per batch BATCH_ARGS integers: op (OP_*),
--             item count N, then per item ITEM_ARGS integers: its limit set (1-based),
--             cost
--
-- Reply: an array of integers: now_us, then per batch a status (0: decided), then per
-- item per rate VERDICT_FIELDS integers: allowed (1/0, plus CAPPED if an ADJUST's
-- charge was held at 2 x capacity), remaining, reset_after_us, retry_after_us (limit
-- and window are the rate's own: algo.h). Each batch runs in a pcall: if one of its
-- Redis commands fails (or the Lua errs), its status is the error's text (a string)
-- and its verdicts are zeros; the other batches are decided as if it had not been
-- sent (see below for what a failed write leaves).
--
-- Compact form, when every batch is a CHECK of one item whose limit set is one token
-- bucket or gcra rate (the common case, and the script's fast path): B is sent negated
-- (-B), and each batch is only its item's ITEM_ARGS (no op, no count); the reply is
-- now_us, then per batch COMPACT_FIELDS integers: remaining * REMAINING_SCALE +
-- allowed, reset_after_us, retry_after_us; an item whose write failed has the error's
-- text in place of the first. Two fewer arguments and two fewer reply integers per
-- decision: ~7% less script time per item.
--
-- Lease form, when every batch is a lease op (ACQUIRE, RELEASE, RENEW) of one item
-- whose limit set is one concurrency rate (the script's lease fast path): B is sent as
-- LEASE_MARK followed by B, and the batches as runs of consecutive batches with the
-- same code: the code, op + LEASE_OPS x (its limit set - 1 + S x its cost), S the
-- number of limit sets (cost 0 for RELEASE and RENEW, whose slots are the lease's own;
-- op OP_RELEASE_ALONE: a RELEASE the daemon hints is likely its set's only lease),
-- followed by LEASE_RUN and the run's length if more than 1, then each batch's lease:
-- the set member an ACQUIRE adds, "<id>:<cost>", or for RELEASE and RENEW the prefix
-- "<id>:" of the member they look for. The reply
-- is now_us, then per batch: remaining x LEASE_SCALE + outcome x 2 + (1 if leases
-- expired), reset_after_us, then retry_after_us if denied (outcome 0), then the leases
-- expired and the slots they held if any; or, for the common cases the fast path writes
-- out, a short answer alone: remaining x LEASE_SCALE + LEASE_SHORT (allowed, reset_after
-- the lease: an ACQUIRE on an absent set) or + LEASE_SHORT + 1 (allowed, reset_after 0:
-- the RELEASE of a set's only lease); a batch that failed is the error's text alone.
-- One argument (and its run's code) and one reply integer per op where the general form
-- has five and seven: each costs Redis ~0.2-0.3 us (measured with callgrind: ~900
-- instructions per argument, ~700 per reply integer).
-- State in Redis: a cell is the string "f:<start>:<count>" (fixed window),
-- "c:<start>:<count>:<previous count>" (sliding counter) or "<tat>" (token bucket and
-- gcra), the fields of rl_cell; a sliding log is a sorted set of "<at>:<cost>" members
-- scored by at, one per instant, trimmed to the trailing period, at most limit of them
-- (the two oldest merge, as in algo.c), with a companion string "<total>:<count>:
-- <newest member>" so that a call touches O(log n + trimmed) members; a set the
-- companion does not describe (written by an rlimitd before the companion, or by hand)
-- is counted whole once, and merged down to limit entries. A charge (ADJUST) leaves at
-- most 2 x capacity used; a state beyond that (an older rlimitd's) counts as 2 x
-- capacity. Every key written gets the TTL after which its state equals an empty one,
-- at most 2 windows (a state that is empty is deleted), except a bucket written by the
-- fast path (a compact call): it is stored "<tat>. " and expires at tat rounded up to
-- a 5 s grid, so that most writes overwrite the value in place and keep its TTL
-- (SETRANGE); the grid is shifted per key (from the key's bytes), so that keys written
-- together do not all expire at the same instant. A key holding something else
-- (another algorithm's state, garbage) counts as empty and is overwritten when written.

-- The numbers shared with C, each line found verbatim in the script as sent by
-- tests/unit/test_redis_script.c, which fails when one differs from the C side:
-- algorithms (rl_algorithm, algo.h), operations (rl_store_op, store.h), the argument
-- and reply layout (redis_script.h).
local ALGO_FIXED_WINDOW, ALGO_SLIDING_LOG, ALGO_SLIDING_COUNTER = 0, 1, 2
local ALGO_TOKEN_BUCKET, ALGO_GCRA, ALGO_CONCURRENCY = 3, 4, 5
local OP_CHECK, OP_PEEK, OP_ADJUST, OP_RESET = 0, 1, 2, 3
local OP_ACQUIRE, OP_RELEASE, OP_RENEW = 4, 5, 6
-- (in a lease form code only: 7 is OP_REFUND elsewhere)
local OP_RELEASE_ALONE = 7
local OP_REFUND = 7
local RATE_ARGS, BATCH_ARGS, ITEM_ARGS = 4, 2, 2
local VERDICT_FIELDS, COMPACT_FIELDS, CAPPED, REMAINING_SCALE = 4, 3, 2, 2
local LEASE_ARGS, LEASE_FIELDS, LEASE_UNKNOWN, MAX_LEASES = 1, 6, 2, 10000
local CLUSTER_MARK, REDIRECT = 'K', 'REDIRECT '
local LEASE_MARK, LEASE_OPS, LEASE_RUN, LEASE_SCALE = 'L', 8, '*', 16
local LEASE_SHORT = 6

local floor, tonumber, fmt, match, find = math.floor, tonumber, string.format, string.match,
    string.find
-- Integers for Redis are formatted with '%d' (a C long: ~10x cheaper than '%.0f', which
-- glibc runs through its multi-precision float path), where a long holds 53 bits (64-bit
-- Redis builds); on a 32-bit build, '%.0f'.
local INT = fmt('%d', 2 ^ 52) == '4503599627370496' and '%d' or '%.0f'
local TAT = INT .. '. '
local call, pcall_ = redis.call, redis.pcall
local TWO53 = 2 ^ 53
local function ceil_ms(us) return floor((us + 999) / 1000) end
-- Redis Cluster's node calls (redis_batch.h): no KEYS declared (the shipped cluster
-- variant starts with "#!lua flags=allow-cross-slot-keys", so one call may touch many
-- slots of its node); ARGV is CLUSTER_MARK, G, the key counts of G runs (each run: the
-- keys of one slot, in call order), the keys, then the arguments described above. The
-- keys become KEYS and the rest ARGV; runs holds the last key index of each run. A
-- compact call (below: it reads no slot's keys apart) has G = -(its key count) and no
-- run counts (an argument costs Redis ~0.9k instructions; most runs are one key).
-- num[s]: the number in decimal string s, converted once per call (Lua's tonumber is
-- strtod, ~0.2 us; a call's ops, set indexes and costs take few distinct values).
local num = setmetatable({}, {__index = function(t, s)
    local v = tonumber(s)
    if s ~= nil then t[s] = v end
    return v
end})
local KEYS, ARGV, runs, runless = KEYS, ARGV, nil, false
if ARGV[1] == CLUSTER_MARK then
    local g, keys, args, total = tonumber(ARGV[2]), {}, {}, 0
    runs = {}
    if g < 0 then total, g, runless = -g, 0, true end
    for r = 1, g do total = total + num[ARGV[2 + r]]; runs[r] = total end
    for i = 1, total do keys[i] = ARGV[2 + g + i] end
    for i = 1, #ARGV - 2 - g - total do args[i] = ARGV[2 + g + total + i] end
    KEYS, ARGV = keys, args
end
-- now: the override in ARGV[1] (tests), else Redis's clock.
local now = tonumber(ARGV[1])
local real = now == 0
if real then
    local t = call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- A TTL ending at time t (us, this clock), as PEXPIRE, PX and expire_arg(t) name it: on
-- Redis's clock the absolute PEXPIREAT and PXAT, which Redis propagates as sent (PEXPIRE
-- and PX it first rewrites into them for replicas and the AOF: ~0.5 us a command), from
-- Redis 7.0 on (redis.REDIS_VERSION_NUM came with it; SET ... PXAT needs 6.2); on an
-- older Redis, and on a test's clock (its now is not Redis's), relative to now.
local abs = real and redis.REDIS_VERSION_NUM ~= nil
local PEXPIRE, PX = abs and 'PEXPIREAT' or 'PEXPIRE', abs and 'PXAT' or 'PX'
local function expire_arg(t) return fmt(INT, ceil_ms(abs and t or t - now)) end
-- Limit sets. Kinds: 'f' fixed_window, 'l' sliding_window_log, 'c' sliding_window_counter,
-- 'b' token_bucket and gcra (one meter). start: the window holding now; top: the most
-- usage a charge may leave (2 x capacity; buckets: tat - now); off: the rate's first
-- key among its item's keys (a log has two: its sorted set and its companion).
local KINDS = {[ALGO_FIXED_WINDOW] = 'f', [ALGO_SLIDING_LOG] = 'l', [ALGO_SLIDING_COUNTER] = 'c',
    [ALGO_TOKEN_BUCKET] = 'b', [ALGO_GCRA] = 'b', [ALGO_CONCURRENCY] = 'q'}
local sets, pos, simple = {}, 3, true
for s = 1, tonumber(ARGV[2]) do
    local rates, count, nk = {}, tonumber(ARGV[pos]), 0
    for r = 1, count do
        local q = pos + (r - 1) * RATE_ARGS
        local rt = {kind = KINDS[tonumber(ARGV[q + 1])], limit = tonumber(ARGV[q + 2]),
            period = tonumber(ARGV[q + 3]), off = nk}
        if rt.kind == 'b' then
            rt.T = floor((rt.period - 1) / rt.limit) + 1
            rt.tol = tonumber(ARGV[q + 4]) * rt.T
            rt.cap, rt.window = tonumber(ARGV[q + 4]), rt.tol
        else
            rt.cap, rt.window = rt.limit, rt.period
            rt.start = now - now % rt.period
        end
        rt.top = 2 * ((rt.kind == 'b') and rt.window or rt.limit)
        nk = nk + ((rt.kind == 'l') and 2 or 1)
        if count ~= 1 or rt.kind ~= 'b' then simple = false end
        rates[r] = rt
    end
    rates.nk = nk
    sets[s] = rates
    pos = pos + 1 + count * RATE_ARGS
end
-- A call whose every batch is a lease op (ACQUIRE, RELEASE, RENEW: one item of a
-- one-rate concurrency set, so one key) takes the lease fast path below: its keys are
-- sorted sets, so the read of string values is skipped (outside Redis Cluster, where
-- that read finds the slots this node does not serve).
-- The expiry of a lease of rate rt taken or renewed now, and its TTL's end as expire_arg
-- gives it, as strings.
local function lease_ends(rt)
    if not rt.ends_s then
        rt.ends_s, rt.exp_s = fmt('%.0f', now + rt.period), expire_arg(now + rt.period)
    end
end
-- A call in the lease form (every batch a lease op: one key each) takes the lease fast
-- path below: its keys are sorted sets, so the read of string values is skipped (outside
-- Redis Cluster, where that read finds the slots this node does not serve). ops[b]:
-- batch b's code decoded ({op, rate, cost, hinted}; false: not a lease op of a
-- concurrency set), once per distinct run head (dec: {d = that, n = the run's
-- batches}); lease_at[b]: the index of its lease in ARGV; acquires: the ACQUIREs'
-- batches.
local nb, leases_only, acquires, ops, lease_at = tonumber(ARGV[pos]), false, {}, {}, {}
if runless and not (nb and nb < 0) then return redis.error_reply('runs missing') end
if not nb and ARGV[pos]:sub(1, #LEASE_MARK) == LEASE_MARK then
    nb, leases_only = tonumber(ARGV[pos]:sub(#LEASE_MARK + 1)), true
    local nsets, na = #sets, 0
    local dec = setmetatable({}, {__index = function(t, s)
        local c, k = match(s, '^(%d+)%' .. LEASE_RUN .. '(%d+)$')
        k = tonumber(k or 1)
        if k < 1 then error('a lease run of no batch', 0) end
        local v = tonumber(c or s) or -1
        local op = v % LEASE_OPS
        local set = (v - op) / LEASE_OPS % nsets
        local rates, cost = sets[set + 1], ((v - op) / LEASE_OPS - set) / nsets
        local d, alone = false, op == OP_RELEASE_ALONE
        if alone then op = OP_RELEASE end
        if v >= 0 and op >= OP_ACQUIRE and op <= OP_RENEW and rates and rates.nk == 1
                and rates[1].kind == 'q' then
            d = {op, rates[1], cost, alone}
            lease_ends(rates[1])
        end
        t[s] = {d = d, n = k}
        return t[s]
    end})
    local p, b = pos + 1, 0
    while b < nb do
        local r = dec[ARGV[p]]
        local d = r.d
        for j = 1, r.n do
            ops[b + j], lease_at[b + j] = d, p + j
            if d and d[1] == OP_ACQUIRE then na = na + 1; acquires[na] = b + j end
        end
        b, p = b + r.n, p + 1 + r.n
    end
end
-- Every key's string value, read at once (nil for missing keys and sorted sets).
local raw, nkeys, moved = {}, #KEYS, {}
local function read(from, to)
    for i = from, to, 1000 do
        local j = (i + 999 < to) and (i + 999) or to
        local vals = call('MGET', unpack(KEYS, i, j))
        for x = i, j do raw[x] = vals[x - i + 1] end
    end
end
-- A cluster call reads run by run (MGET stays within a slot), before anything is
-- written: a run whose slot this node does not serve, or is migrating away with a key
-- missing, fails its read; its batches are answered REDIRECT and the error (moved),
-- and nothing of them is written: the daemon sends them again where Redis says. A run
-- of one key (most of them: a call's items spread over 16384 slots) is one redis.pcall.
-- A compact call (nb < 0) reads nothing here: the fast path reads each key as it writes
-- it (see there).
if runs and nb > 0 then
    local from = 1
    for r = 1, #runs do
        local to, err = runs[r], nil
        if to == from then
            local vals = pcall_('MGET', KEYS[from])
            if vals.err then err = vals.err else raw[from] = vals[1] end
        else
            local ok, e = pcall(read, from, to)
            if not ok then err = type(e) == 'table' and e.err or e end
        end
        if err then
            err = REDIRECT .. tostring(err)
            for x = from, to do moved[x] = err end
        end
        from = to + 1
    end
elseif not runs and not leases_only then
    read(1, nkeys)
end
local out, n = {now}, 1
-- A fast-path bucket is stored "<tat>. " (tonumber reads it; the mark is the trailing
-- ". ", not the "." of rlimitd before the grid was shifted, whose TTL is on an unshifted
-- grid: such a value counts as unmarked and gets a fresh TTL, so old and new daemons
-- sharing a Redis never keep a TTL that ends before the bucket is empty).
-- It expires at the first point of its key's grid after its tat: a
-- 5 s grid, shifted per key (by its last four bytes before "}:<rate>", scattered by
-- a multiplier near 0.618 of the grid: keys that differ in one byte land far apart),
-- so that keys written together do not expire together (an expiry storm stalls Redis).
local GRID, byte = 5000000, string.byte
local function phase(key)
    local w, x, y, z = byte(key, -7, -4)
    return ((((w or 0) * 31 + (x or 0)) * 31 + (y or 0)) * 31 + (z or 0)) * 3090169 % GRID
end
local function grid_end(tat, ph) return tat - (tat + ph) % GRID + GRID end
-- Token bucket and gcra, one meter: a rate's T is its emission interval, tol its burst
-- x T, a key's state its tat (theoretical arrival time). The bucket's arithmetic is
-- written once, in bucket_load and bucket_verdict: the fast path below and the general
-- path's cell_* functions both use them.
-- Returns the tat normalized to now (raised to now; beyond 2 windows ahead, what a
-- charge may leave, as 2 windows ahead: an older rlimitd's ADJUST) and moved by delta
-- units (0: none) within the same bounds, and whether a charge was capped.
local function bucket_load(rt, tat, delta)
    local top = now + rt.top
    if tat < now then tat = now elseif tat > top then tat = top end
    tat = tat + delta * rt.T
    if tat > top then return top, true end
    if tat < now then return now, false end
    return tat, false
end
-- The verdict of cost units (at least 1) on a normalized tat. Returns whether they fit,
-- the tat (after them if they fit and consume is set), remaining and reset_after of
-- that tat, and retry_after (0 if they fit).
local function bucket_verdict(rt, tat, cost, consume)
    local T, tol, after = rt.T, rt.tol, tat + cost * rt.T
    local ok = cost <= rt.cap and after - now <= tol
    if ok and consume then tat = after end
    local held = tat - now
    local remaining = (held < tol) and floor((tol - held) / T) or 0
    if ok then return true, tat, remaining, held, 0 end
    return false, tat, remaining, held, (cost > rt.cap) and rt.window or after - now - tol
end
-- rt.idle[cost]: the verdict of cost on an idle bucket (tat <= now) of rate rt, the same
-- for every such key of a call: {its compact reply's first field, reset_after, the tat
-- after it - now}, or false if cost does not fit an idle bucket. Made once per rate and
-- cost (a bucket_verdict per decision was ~1k instructions of Redis).
local IDLE = {__index = function(t, cost)
    local rt = t.rt
    local ok, _, remaining, reset = bucket_verdict(rt, now, cost, true)
    local iv = ok and {remaining * REMAINING_SCALE + 1, reset, cost * rt.T}
    t[cost] = iv
    return iv
end}
-- The fast path: a compact call (-B batches, each a single-item CHECK of one token
-- bucket or gcra rate: set and cost). It decides with bucket_load and bucket_verdict,
-- as the general path does; none of the general path's functions below is even created
-- (a one-item call: 18 -> 12 us in redis-server). A key met again reads what this call
-- wrote (seen). An item whose write failed (redis.pcall) has the error's text in place
-- of its first reply field. Measured (issue 12): writing the bucket's arithmetic out
-- here instead of calling bucket_load and bucket_verdict gains nothing measurable in the
-- pipelined Redis benchmark (rlimit-bench -c 4 -d 256 over 100,000 bucket keys, 10 runs
-- of each alternated on a shared 2-core machine: medians 162k written out, 168k shared,
-- run-to-run spread +-15%); in Lua alone, without Redis's commands, the two calls cost
-- ~0.15 us of ~2 us per item.
if nb < 0 then
    if not simple then return redis.error_reply('not compact') end
    local p, seen = pos + 1, {}
    for s = 1, #sets do sets[s][1].idle = setmetatable({rt = sets[s][1]}, IDLE) end
    for i = 1, -nb do
        local rt, cost, key = sets[num[ARGV[p]]][1], num[ARGV[p + 1]], KEYS[i]
        -- v: the key's value; e and len: the grid point its TTL ends at and the length of
        -- the value it holds (for SETRANGE), when they are known to match v.
        local v, err, ph, e, len, prov = seen[key], nil, nil, nil, nil, false
        local iv = v == nil and runs and rt.idle[cost]
        if iv then
            -- A cluster call has no read before: most keys are idle (tat <= now), so the
            -- key is written at once as an idle bucket after cost, keeping its TTL, with
            -- GET to learn what it held: on an idle key whose TTL already ends at the new
            -- tat's grid point (a marked value's ends at its own: most keys hit again
            -- within the grid's 5 s) that one command is the decision, where a read and a
            -- write took two; otherwise PEXPIRE sets the TTL. A key this node does not
            -- serve (or no longer: its slot migrating) fails that command, unwritten, and
            -- its item is answered REDIRECT; a key of another type counts as empty and is
            -- overwritten. If the bucket was not idle, it is decided on what it held
            -- (below), and the key written again: its new tat, or if denied what it held,
            -- its TTL kept all along (prov: the key holds this first write, its TTL still
            -- the old one, ending at grid point e if the old value was marked).
            local tp = now + iv[3]
            ph = phase(key)
            local nvp = fmt(TAT, tp)
            -- (g: the value it held, false if none, or an error; a string's .err is the
            -- string library's, nil)
            local g = pcall_('SET', key, nvp, 'KEEPTTL', 'GET')
            if g and g.err and find(g.err, 'WRONGTYPE', 1, true) == 1 then
                g = pcall_('SET', key, nvp)
                if g.err then err = g.err else g = false end
            elseif g and g.err then
                err = REDIRECT .. g.err
            end
            local a = g and tonumber(g) or 0
            if g and a - a == 0 and byte(g, -1) == 32 then e = grid_end(a, ph) end
            if not err and (a <= now or a ~= a) then
                local ep, r = grid_end(tp, ph), nil
                if e ~= ep or tp + 2000 > ep then
                    r = pcall_(PEXPIRE, key, expire_arg(ep))
                end
                if type(r) == 'table' and r.err then
                    out[n + 1], out[n + 2], out[n + 3] = r.err, 0, 0
                else
                    out[n + 1], out[n + 2], out[n + 3] = iv[1], iv[2], 0
                    seen[key] = nvp
                end
                err = false
            elseif not err then
                v, len, prov = g, #nvp, true
            end
        elseif v == nil and runs then
            -- (a cost an idle bucket cannot take: read, then decided below)
            v = pcall_('GET', key)
            if type(v) == 'table' then
                if find(v.err, 'WRONGTYPE', 1, true) ~= 1 then err = REDIRECT .. v.err end
                v = false
            end
        elseif v == nil then
            v = raw[i]
        end
        if err then
            out[n + 1], out[n + 2], out[n + 3] = err, 0, 0
        elseif err == nil then
            local a = v and tonumber(v) or 0
            if not prov and a ~= 0 and byte(v, -1) == 32 then
                ph = phase(key)
                e, len = grid_end(a, ph), #v
            end
            -- an idle bucket's verdict is known (rt.idle), else bucket_verdict
            local known, ok, tat, first, reset, retry = a <= now and rt.idle[cost], nil, nil, nil, nil, 0
            if known then
                ok, tat, first, reset = true, now + known[3], known[1], known[2]
            else
                local remaining
                ok, tat, remaining, reset, retry =
                    bucket_verdict(rt, bucket_load(rt, a, 0), cost, true)
                first = remaining * REMAINING_SCALE + (ok and 1 or 0)
            end
            local r, put
            if ok then
                -- (tat > now: CHECK costs are at least 1.) Within the grid point the key
                -- already expires at, the new tat overwrites the old one in place (SETRANGE
                -- keeps the TTL and reuses the value; the script sees time stand still, so a
                -- key read is there).
                ph = ph or phase(key)
                local e2 = grid_end(tat, ph)
                put = fmt(TAT, tat)
                if e == e2 and tat + 2000 <= e2 and #put == len then
                    r = pcall_('SETRANGE', key, '0', put)
                else
                    r = pcall_('SET', key, put, PX, expire_arg(e2))
                end
            elseif prov then
                -- denied after the write above: the key gets back what it held (its TTL
                -- was kept)
                put = v
                r = pcall_('SET', key, v, 'KEEPTTL')
            end
            if type(r) == 'table' and r.err then
                out[n + 1], out[n + 2], out[n + 3] = r.err, 0, 0
            else
                out[n + 1], out[n + 2], out[n + 3] = first, reset, retry
                if put then seen[key] = put end
            end
        end
        n = n + COMPACT_FIELDS
        p = p + ITEM_ARGS
    end
    return out
end
-- Concurrency leases (ACQUIRE, RELEASE, RENEW: one item of one rate, then LEASE_ARGS:
-- the lease id, kept as the decimal string it came as: a Lua number holds 53 bits): a
-- sorted set per key, one member "<id>:<slots>" per lease scored by when it expires
-- (us, this clock). A call reads the set in score order, at most MAX_LEASES members
-- (the highest limit, so all that rlimitd writes): the expired ones first (counted in
-- the reply, then removed), then the others: held is the sum of their slots, and the
-- lease named is the one with its "<id>:" prefix, so the read that counts held finds
-- it and no index is kept beside the set. The set's TTL is never shorter than its
-- latest lease: ACQUIRE and RENEW extend it to their lease's end when it is the
-- latest; RELEASE leaves it (a member removed needs no later TTL, and the set goes
-- with its last member; a hinted RELEASE that puts back a set its pop emptied gives it
-- an ACQUIRE's TTL), so a set whose leases all expired is gone by the end of the
-- latest lease written to it, at most lease after its last ACQUIRE or RENEW (or that
-- put-back). Reply per
-- item, LEASE_FIELDS integers: outcome (1 allowed, 0 denied, LEASE_UNKNOWN: not held),
-- remaining, reset_after, retry_after, leases expired, the slots they held.
local function slots_of(m) return tonumber(match(m, '^%d+:(%d+)$')) or 0 end
-- (A score Redis sent is a number's text, never anything else: s + 0 converts it once,
-- where tonumber converts twice, lua_isnumber then lua_tonumber: ~2k instructions each.)
-- Numbers go to Redis as strings made once (Redis formats a Lua number argument at
-- ~0.3 us each): the read's bounds, now, and per lease duration (rt) the expiry of a
-- lease taken or renewed now (ends_s) and its TTL's end as expire_arg gives it (exp_s).
local LEASE_TOP, now_s, NONE = tostring(MAX_LEASES - 1), fmt('%.0f', now), {}
-- Decides one lease op on key and returns its LEASE_FIELDS figures. id: the lease's
-- members' prefix "<lease id>:"; member: an ACQUIRE's new member (id followed by cost,
-- its slots). all: the set as the caller read it (ZRANGE ... WITHSCORES), if it did. A
-- RELEASE of a set's only member deletes the set (as ZREM would, cheaper).
local function lease_decide(op, rt, key, id, member, cost, all)
    lease_ends(rt)
    local held, gone, xs, code, reset, retry = 0, 0, 0, 1, rt.period, 0
    local extend, mine, last, whole = true, nil, nil, true
    if not all then all = pcall_('ZRANGE', key, '0', LEASE_TOP, 'WITHSCORES') end
    if all.err then call('DEL', key); all = NONE end
    local na = #all
    if na > 0 then
        for i = 1, na, 2 do
            local m, at = all[i], all[i + 1] + 0
            if at <= now then gone, xs = gone + 1, xs + slots_of(m)
            elseif find(m, id, 1, true) == 1 then mine = m
            else last, held = at, held + slots_of(m) end
        end
        -- (a set read whole: at most MAX_LEASES members, as rlimitd writes)
        whole = na < 2 * MAX_LEASES
        if gone > 0 and (op ~= OP_RELEASE or not mine or gone * 2 + 2 < na or not whole) then
            call('ZREMRANGEBYSCORE', key, '-inf', now_s)
        end
    end
    local tail = last and last - now or 0
    if op == OP_ACQUIRE and held + cost <= rt.limit then
        call('ZADD', key, rt.ends_s, member)
        held = held + cost
    elseif op == OP_ACQUIRE then
        -- retry: until enough of the held leases have expired for cost to fit, the
        -- soonest first (a lease never fits: the lease).
        local need = held + cost - rt.limit
        code, reset, extend = 0, tail, false
        for i = 1, na, 2 do
            local at = all[i + 1] + 0
            if at > now and need > 0 then need, retry = need - slots_of(all[i]), at - now end
        end
        if need > 0 then retry = rt.period end
    elseif not mine then
        code, reset, extend = LEASE_UNKNOWN, tail, false
    elseif op == OP_RENEW then
        call('ZADD', key, 'XX', rt.ends_s, mine)
        held = held + slots_of(mine)
    else
        -- the set's members are mine and the expired ones: nothing stays
        if gone * 2 + 2 == na and whole then call('DEL', key) else call('ZREM', key, mine) end
        reset, extend = tail, false
    end
    if extend and last and last > now + rt.period then
        call(PEXPIRE, key, expire_arg(last))
    elseif extend then
        call(PEXPIRE, key, rt.exp_s)
    end
    return code, held < rt.limit and rt.limit - held or 0, reset, retry, gone, xs
end
-- Which ACQUIREs' sets do not exist (absent[key]), from EXISTS over their keys (those of
-- batches list[lo..hi], c of them exist), halved while fewer than half exist: an ACQUIRE
-- on a missing set (a key with no lease held: the common case) skips its read. Outside
-- Redis Cluster only (there one command stays within a slot).
local absent = {}
local function probe(list, lo, hi, c)
    if c == 0 then
        for i = lo, hi do absent[KEYS[list[i]]] = true end
    elseif 2 * c < hi - lo + 1 then
        local mid, keys = floor((lo + hi) / 2), {}
        for i = lo, mid do keys[i - lo + 1] = KEYS[list[i]] end
        local c1 = call('EXISTS', unpack(keys))
        probe(list, lo, mid, c1)
        probe(list, mid + 1, hi, c - c1)
    end
end
local function find_absent(list)
    for lo = 1, #list, 1000 do
        local hi, keys = (lo + 999 < #list) and lo + 999 or #list, {}
        if hi > lo then
            for i = lo, hi do keys[i - lo + 1] = KEYS[list[i]] end
            probe(list, lo, hi, call('EXISTS', unpack(keys)))
        end
    end
end
-- The lease fast path: a call in the lease form, decided one batch after the other
-- with lease_decide, before any of the general path's functions is created. Its key is
-- the batch's one key. The batches run in one pcall (lease_run, from batch b on); a batch
-- that fails (a command's error, or not a lease op) has the error's text alone in its
-- place, and the next ones run in a new pcall. A set known absent at the start is no
-- longer once an ACQUIRE of this call may have written it.
if leases_only then
    local at = 1
    if not runs then pcall(find_absent, acquires) end
    local function lease_run(b)
        for x = b, nb do
            at = x
            local d, key = ops[x], KEYS[x]
            if runs and moved[x] then error(moved[x], 0) end
            if not d then error('not a lease call', 0) end
            local op, rt, lease = d[1], d[2], ARGV[lease_at[x]]
            local first, reset, all
            -- the common cases written out: an ACQUIRE on a set known absent, a RELEASE
            -- of a set's only member (live); the others through lease_decide
            if op == OP_ACQUIRE then
                if absent[key] and d[3] <= rt.limit then
                    absent[key] = nil
                    call('ZADD', key, rt.ends_s, lease)
                    call(PEXPIRE, key, rt.exp_s)
                    first = (rt.limit - d[3]) * LEASE_SCALE + LEASE_SHORT
                end
            elseif op == OP_RELEASE and d[4] then
                -- a lease the daemon acquired on an absent set (a hint: its set is likely
                -- that lease alone): ZPOPMIN of 2 takes such a set whole in one command;
                -- a set that held others gets back what was popped, and if the pop
                -- emptied it (no TTL after), an ACQUIRE's TTL (a lease from now, or the
                -- latest end it holds if later: never one Redis's running clock may have
                -- passed, so the read below finds, trims and counts what it holds), and
                -- is decided as read anew
                all = pcall_('ZPOPMIN', key, '2')
                local na = #all
                if na == 2 and find(all[1], lease, 1, true) == 1 then
                    if all[2] + 0 > now then first = rt.limit * LEASE_SCALE + LEASE_SHORT + 1 end
                elseif na > 0 then
                    local back, last = {}, all[na] + 0
                    for i = 1, na, 2 do back[i], back[i + 1] = all[i + 1], all[i] end
                    call('ZADD', key, unpack(back))
                    if call('PTTL', key) == -1 then
                        call(PEXPIRE, key, last > now + rt.period and expire_arg(last) or rt.exp_s)
                    end
                    all = nil
                end
            elseif op == OP_RELEASE then
                all = pcall_('ZRANGE', key, '0', LEASE_TOP, 'WITHSCORES')
                if #all == 2 and all[2] + 0 > now and find(all[1], lease, 1, true) == 1 then
                    call('DEL', key)
                    first = rt.limit * LEASE_SCALE + LEASE_SHORT + 1
                end
            end
            if first then
                out[n + 1], n = first, n + 1
            else
                local code, left, retry, gone, xs
                code, left, reset, retry, gone, xs = lease_decide(op, rt, key, lease, lease, d[3], all)
                out[n + 1], out[n + 2] = left * LEASE_SCALE + code * 2 + (gone > 0 and 1 or 0), reset
                n = n + 2
                if code == 0 then out[n + 1], n = retry, n + 1 end
                if gone > 0 then out[n + 1], out[n + 2], n = gone, xs, n + 2 end
            end
        end
        at = nb + 1
    end
    while at <= nb do
        local ok, err = pcall(lease_run, at)
        if not ok then
            absent[KEYS[at]] = nil
            out[n + 1], n, at = tostring(type(err) == 'table' and err.err or err), n + 1, at + 1
        end
    end
    return out
end
-- The general path. Cells: {a, b, c, kind}, stored as "<tat>" (bucket, unmarked:
-- its TTL ends when the bucket is full again), "f:<a>:<b>" or "c:<a>:<b>:<c>". A key
-- written (stale) is read again with GET when its cell must be loaded anew.
local cells, stale = {}, {}
local PATTERN = {f = '^f:(%-?%d+):(%-?%d+)$', c = '^c:(%-?%d+):(%-?%d+):(%-?%d+)$'}
local function value(k)
    if not stale[KEYS[k]] then return raw[k] end
    local v = pcall_('GET', KEYS[k])
    if type(v) == 'string' then return v end
end
local function cell_of(k, rt)
    local key = KEYS[k]
    local st = cells[key]
    if st and st[4] == rt.kind then return st end
    local a, b, c, v = 0, 0, 0, value(k)
    if v and rt.kind == 'b' then
        a = tonumber(v) or 0
    elseif v then
        local x, y, z = match(v, PATTERN[rt.kind])
        if x then a, b, c = tonumber(x), tonumber(y), tonumber(z or 0) end
    end
    st = {a, b, c, rt.kind}
    cells[key] = st
    return st
end
-- Returns floor(a * b / d) and the remainder, exactly, for integers 0 <= a, b < 2^53
-- and 1 <= d < 2^52 whose quotient is below 2^53.
local function muldivmod(a, b, d)
    local p = a * b
    if p < TWO53 then
        local q = floor(p / d)
        return q, p - q * d
    end
    if a < b then a, b = b, a end
    local am = a % d
    local aq = (a - am) / d
    local q, r, bit = 0, 0, 1
    while bit * 2 <= b do bit = bit * 2 end
    while bit >= 1 do
        q, r = q * 2, r * 2
        if r >= d then q, r = q + 1, r - d end
        if b >= bit then
            b = b - bit
            q, r = q + aq, r + am
            if r >= d then q, r = q + 1, r - d end
        end
        bit = bit / 2
    end
    return q, r
end
local function usage(x) if x > 0 then return x end return 0 end
local function fits_in(used, cost, limit) return used <= limit and cost <= limit - used end
local function room(limit, used) if used < limit then return limit - used end return 0 end
-- The reply: now, then per batch its status and per rate: allowed (+ CAPPED if an
-- ADJUST's charge was capped), remaining, reset_after, retry_after.
local function emit(ok, remaining, reset, retry, capped)
    if capped then ok = ok + CAPPED end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = ok, remaining, reset, retry
    n = n + VERDICT_FIELDS
end
-- The cell normalized to now: windows moved to now's, the bucket's tat raised to now.
-- Usage beyond what a charge may leave (an older rlimitd's ADJUST) counts as top.
local function cell_load(rt, st)
    local a, top = st[1], rt.top
    if rt.kind == 'b' then return (bucket_load(rt, a, 0)), 0, 0 end
    local s, b, c = rt.start, 0, 0
    if a == s then b = usage(st[2]); if rt.kind == 'c' then c = usage(st[3]) end
    elseif rt.kind == 'c' and a == s - rt.period then c = usage(st[2]) end
    if b > top then b = top end
    if c > top then c = top end
    return s, b, c
end
local function estimate(rt, a, b, c)
    local p = rt.period
    return muldivmod(usage(c), p - (now - a), p) + usage(b)
end
local function cell_fits(rt, a, b, c, cost)
    if rt.kind == 'f' then return fits_in(usage(b), cost, rt.limit) end
    return fits_in(estimate(rt, a, b, c), cost, rt.limit)
end
-- Adds delta; returns the cell and whether a charge was capped at top.
local function cell_charge(rt, a, b, c, delta)
    if rt.kind == 'b' then
        local tat, capped = bucket_load(rt, a, delta)
        return tat, b, c, capped
    end
    if rt.kind == 'f' or delta >= 0 then
        local x = usage(b + delta)
        if x > rt.top then return a, rt.top, c, true end
        return a, x, c
    end
    local rest = b + delta
    if rest < 0 then return a, 0, usage(c + rest) end
    return a, rest, c
end
-- Returns remaining and reset_after (not for buckets: bucket_verdict).
local function cell_figures(rt, a, b, c)
    if rt.kind == 'f' then
        if b > 0 then return room(rt.limit, b), a + rt.period - now end
        return rt.limit, 0
    end
    local remaining = room(rt.limit, estimate(rt, a, b, c))
    if b > 0 then return remaining, a + 2 * rt.period - now end
    if c > 0 then return remaining, a + rt.period - now end
    return remaining, 0
end
-- The first instant of the window [s, s + p) where the counter estimate plus cost fits.
local function pass_in(prev, curr, limit, cost, s, p)
    if not fits_in(curr, cost, limit) then return nil end
    local k = limit - cost - curr
    if prev == 0 or k >= prev then return s end
    local x, r = muldivmod(k + 1, p, prev)
    if r == 0 then x = x - 1 end
    if x == 0 then return nil end
    return s + p - x
end
local function cell_retry(rt, a, b, c, cost)
    if rt.kind == 'f' then return a + rt.period - now end
    local p = rt.period
    local at = pass_in(usage(c), usage(b), rt.limit, cost, a, p)
        or pass_in(usage(b), 0, rt.limit, cost, a + p, p) or a + 2 * p
    return at - now
end
-- Emits the verdict of cost on a loaded cell (figures as if consumed when it fits and
-- consume is set). Returns whether it fits and the cell (after it, if consumed).
local function cell_verdict(rt, a, b, c, cost, consume, capped)
    if rt.kind == 'b' then
        local ok, tat, remaining, reset, retry = bucket_verdict(rt, a, cost, consume)
        emit(ok and 1 or 0, remaining, reset, retry, capped)
        return ok, tat, b, c
    end
    local ok = cost <= rt.cap and cell_fits(rt, a, b, c, cost)
    if ok and consume then a, b, c = cell_charge(rt, a, b, c, cost) end
    local remaining, reset = cell_figures(rt, a, b, c)
    local retry = 0
    if not ok then retry = (cost > rt.cap) and rt.window or cell_retry(rt, a, b, c, cost) end
    emit(ok and 1 or 0, remaining, reset, retry, capped)
    return ok, a, b, c
end
-- Emits the verdict of cost; returns whether it passes and the cell after consuming it.
local function cell_decide(rt, st, cost)
    local a, b, c = cell_load(rt, st)
    return cell_verdict(rt, a, b, c, cost, true)
end
local function cell_expires(rt, st)
    if rt.kind == 'b' then return st[1] end
    if st[2] > 0 then return st[1] + ((rt.kind == 'f') and rt.period or 2 * rt.period) end
    if rt.kind == 'c' and st[3] > 0 then return st[1] + rt.period end
    return st[1]
end
-- Stores the cell with the TTL after which it equals an empty one (at most 2 windows:
-- charges are capped), or deletes it.
local function cell_save(key, rt, a, b, c)
    local st = cells[key]
    st[1], st[2], st[3] = a, b, c
    stale[key] = true
    local ttl = cell_expires(rt, st) - now
    if ttl <= 0 then call('DEL', key); return end
    local v = fmt('%.0f', a)
    if rt.kind == 'f' then v = fmt('f:%.0f:%.0f', a, b)
    elseif rt.kind == 'c' then v = fmt('c:%.0f:%.0f:%.0f', a, b, c) end
    call('SET', key, v, PX, expire_arg(now + ttl))
end
-- Sliding logs: a sorted set of "<at>:<cost>" members scored by at (one per instant,
-- at most limit: see log_add) and a companion string "<total>:<count>:<newest
-- member>" under the same hash tag. A call reads the companion, ZCARD and the newest
-- member; only if they disagree (the set was written by an older rlimitd, which knew
-- no companion, or by hand) is the whole set read once to count it. Trimming reads
-- and removes only the entries out of the period; a denial's retry walks from the
-- oldest only as far as needed. Every change is written at once, an entry's new form
-- before its old one is removed, so that a failed command leaves a set that counts
-- as much as before or more, never less; the companion is written at the batch's end
-- (if that fails, the next call finds it stale and counts the set).
local logs, batch_logs = {}, {}
local function entry(m)
    local at, c = match(m or '', '^(%-?%d+):(%-?%d+)$')
    if at then return tonumber(at), usage(tonumber(c)) end
end
local function member(at, c) return fmt('%.0f:%.0f', at, c) end
local function log_touch(lg)
    if not lg.dirty then lg.dirty = true; batch_logs[#batch_logs + 1] = lg end
end
-- Sends command key args..., 1000 arguments per call at most (unpack's limit is 8000).
local function call_chunked(command, key, args)
    for i = 1, #args, 1000 do
        call(command, key, unpack(args, i, (i + 999 < #args) and (i + 999) or #args))
    end
end
-- Reads the newest entry into lg.head ({at, cost, member}) or nil.
local function log_head(lg)
    local m = call('ZRANGE', lg.key, -1, -1)[1]
    local at, c = entry(m)
    lg.head = at and {at, c, m} or nil
end
-- Merges the m oldest entries into one at the newest of their instants (counting them
-- longer, never shorter).
local function log_merge(lg, m)
    local old, sum, at = call('ZRANGE', lg.key, 0, m - 1), 0, 0
    for i = 1, #old do
        local x, c = entry(old[i])
        at, sum = x or at, sum + (c or 0)
    end
    local merged, rem = member(at, sum), {}
    call('ZADD', lg.key, at, merged)
    for i = 1, #old do if old[i] ~= merged then rem[#rem + 1] = old[i] end end
    call_chunked('ZREM', lg.key, rem)
    lg.count = lg.count - #old + 1
    if lg.count == 1 then lg.head = {at, sum, merged} end
    log_touch(lg)
end
-- Returns the total of the whole set, or nil if a member is not an entry.
local function log_sum(key)
    local all, total = call('ZRANGE', key, 0, -1), 0
    for i = 1, #all do
        local at, c = entry(all[i])
        if not at then return nil end
        total = total + c
    end
    return total
end
-- Loads and trims the log of KEYS[k] (companion KEYS[k + 1]). Something else at the
-- key (another type, foreign members) counts as empty and is deleted when written.
local function new_log(rt, k)
    local lg = {key = KEYS[k], ck = KEYS[k + 1], rt = rt, total = 0, count = 0}
    logs[KEYS[k]] = lg
    return lg
end
local function log_of(rt, k)
    local key = KEYS[k]
    local lg = logs[key]
    if lg then return lg end
    lg = new_log(rt, k)
    local cnt = pcall_('ZCARD', key)
    if type(cnt) ~= 'number' then lg.wipe = true; return lg end
    if cnt == 0 then return lg end
    log_head(lg)
    local t, c, m = match(value(k + 1) or '', '^(%d+):(%d+):(.+)$')
    local total = tonumber(t)
    if tonumber(c) ~= cnt or not lg.head or m ~= lg.head[3] then
        total = log_sum(key)
        log_touch(lg)
    end
    if not total then lg.wipe, lg.head = true, nil; return lg end
    local horizon = now - rt.period
    local old = call('ZRANGEBYSCORE', key, '-inf', horizon)
    for i = 1, #old do
        local _, x = entry(old[i])
        total = usage(total - (x or 0))
    end
    lg.total, lg.count = total, cnt - #old
    if #old > 0 then
        call('ZREMRANGEBYSCORE', key, '-inf', horizon)
        log_touch(lg)
        if lg.count == 0 then lg.head = nil end
    end
    if lg.count > rt.limit then log_merge(lg, lg.count - rt.limit + 1) end
    return lg
end
-- Makes the newest entry hold c units (none: removes it).
local function log_set_head(lg, c)
    local h = lg.head
    if c > 0 then
        local m = member(h[1], c)
        call('ZADD', lg.key, h[1], m)
        if m ~= h[3] then call('ZREM', lg.key, h[3]) end
        lg.head = {h[1], c, m}
    else
        call('ZREM', lg.key, h[3])
        lg.count = lg.count - 1
        log_head(lg)
    end
    log_touch(lg)
end
-- Logs cost units at now: into an entry at now or later (a clock that stepped back),
-- else a new entry; a log over limit entries merges its two oldest.
local function log_add(lg, cost)
    if lg.wipe then call('DEL', lg.key); lg.wipe = nil end
    local h = lg.head
    if h and h[1] >= now then
        log_set_head(lg, h[2] + cost)
    else
        local m = member(now, cost)
        call('ZADD', lg.key, now, m)
        lg.head, lg.count = {now, cost, m}, lg.count + 1
        log_touch(lg)
        if lg.count > lg.rt.limit then log_merge(lg, 2) end
    end
    lg.total = lg.total + cost
end
-- Removes up to amount units, newest entries first.
local function log_give_back(lg, amount)
    while amount > 0 and lg.head do
        local taken = (lg.head[2] < amount) and lg.head[2] or amount
        lg.total, amount = usage(lg.total - taken), amount - taken
        log_set_head(lg, lg.head[2] - taken)
    end
end
-- Writes the companion and the TTL of a log changed in this batch (at most 2 periods,
-- even for an entry from a clock far ahead), or deletes both keys of an empty log.
local function log_save(lg)
    lg.dirty = nil
    stale[lg.ck] = true
    if not lg.head then call('DEL', lg.key, lg.ck); return end
    local ttl = lg.head[1] + lg.rt.period - now
    if ttl > 2 * lg.rt.period then ttl = 2 * lg.rt.period end
    ttl = expire_arg(now + ttl)
    call(PEXPIRE, lg.key, ttl)
    pcall_('SET', lg.ck, fmt('%.0f:%.0f:', lg.total, lg.count) .. lg.head[3], PX, ttl)
end
-- The wait until the oldest entries have left the period far enough for cost to fit.
local function log_retry(rt, lg, cost)
    local kept, i, step = lg.total, 0, 8
    while i < lg.count do
        local r = call('ZRANGE', lg.key, i, i + step - 1)
        if #r == 0 then break end
        for j = 1, #r do
            local at, c = entry(r[j])
            c = c or 0
            kept = (c < kept) and (kept - c) or 0
            if fits_in(kept, cost, rt.limit) then return (at or now) + rt.period - now end
        end
        i, step = i + step, step * 4
    end
    return rt.period
end
-- Emits the verdict of cost (figures as if consumed when consume is set); returns
-- whether it passes.
local function log_verdict(rt, lg, cost, consume, capped)
    local possible = cost <= rt.limit
    local ok = possible and fits_in(lg.total, cost, rt.limit)
    local pending = (ok and consume) and cost or 0
    local newest = lg.head and lg.head[1]
    if pending > 0 and (not newest or newest < now) then newest = now end
    local reset = newest and (newest + rt.period - now) or 0
    local retry = 0
    if not ok then retry = possible and log_retry(rt, lg, cost) or rt.period end
    emit(ok and 1 or 0, room(rt.limit, lg.total + pending), reset, retry, capped)
    return ok
end
-- Batches: op (OP_*), item count, then per item its limit set and cost at ARGV[p...];
-- the items' keys follow one another from KEYS[k]. Each runs in a pcall: a batch whose
-- Redis command fails (or whose Lua errs) is answered with the error alone, and the
-- keys it touched are read again by the next batch. A CHECK decides every rate of
-- every item first and writes only then; if a write fails midway, the rates written
-- keep the charge of a request answered with an error (counted, never under-counted)
-- and the others keep their state.
local function decide_batch(op, p, k, count)
    local prior = (count > 1) and {} or nil
    local all, plan, pn = true, {}, 0
    for _ = 1, count do
        local rates, cost = sets[tonumber(ARGV[p])], tonumber(ARGV[p + 1])
        p = p + ITEM_ARGS
        for r = 1, #rates do
            local rt = rates[r]
            local kk = k + rt.off
            local key = KEYS[kk]
            local c = prior and cost + (prior[key] or 0) or cost
            local ok, a, b, cc
            if rt.kind == 'l' then
                ok, a, b, cc = log_verdict(rt, log_of(rt, kk), c, true), cost, 0, 0
            else
                ok, a, b, cc = cell_decide(rt, cell_of(kk, rt), c)
            end
            all = all and ok
            plan[pn + 1], plan[pn + 2], plan[pn + 3], plan[pn + 4], plan[pn + 5] = key, rt, a, b, cc
            pn = pn + 5
            if prior then prior[key] = (prior[key] or 0) + cost end
        end
        k = k + rates.nk
    end
    if op ~= OP_CHECK or not all then return end
    for i = 1, pn, 5 do
        local key, rt = plan[i], plan[i + 1]
        if rt.kind == 'l' then log_add(logs[key], plan[i + 2])
        else cell_save(key, rt, plan[i + 2], plan[i + 3], plan[i + 4]) end
    end
end
-- ADJUST adds cost to every rate; a charge leaves at most top (2 x capacity) used.
local function adjust_batch(op, p, k, count)
    for _ = 1, count do
        local rates, cost = sets[tonumber(ARGV[p])], tonumber(ARGV[p + 1])
        p = p + ITEM_ARGS
        for r = 1, #rates do
            local rt = rates[r]
            local kk = k + rt.off
            if rt.kind == 'l' then
                local lg, add = log_of(rt, kk), cost
                if add > 0 then
                    if add > rt.top - lg.total then add = usage(rt.top - lg.total) end
                    if add > 0 then log_add(lg, add) end
                else
                    log_give_back(lg, -cost)
                end
                log_verdict(rt, lg, 1, false, add < cost)
            else
                local a, b, c = cell_load(rt, cell_of(kk, rt))
                local a2, b2, c2, capped = cell_charge(rt, a, b, c, cost)
                cell_verdict(rt, a2, b2, c2, 1, false, capped)
                cell_save(KEYS[kk], rt, a2, b2, c2)
            end
        end
        k = k + rates.nk
    end
end
-- REFUND (Redis Cluster: a split MULTI_CHECK's part given back because another part was
-- refused; after its item's ITEM_ARGS, LEASE_ARGS more: t0, the time of the CHECK given
-- back, on this clock) gives back cost units only as far as they still count now, never
-- more: a fixed window's count if now is in t0's window; a sliding counter's count of
-- t0's window, current or (in the next window) previous; a bucket's tat by cost x T less
-- the time since t0 (the units drain no faster than that); a log's entry at t0. A refund
-- that comes too late leaves units counted (safe), and never gives back what others
-- consumed. Its verdict is as ADJUST's. The extra argument is "<t0>", or for a one-rate
-- bucket "<t0>:<its tat after the CHECK>", which makes its give-back exact.
local function log_refund(lg, t0, cost)
    if lg.head and lg.head[1] == t0 then
        local taken = (lg.head[2] < cost) and lg.head[2] or cost
        lg.total = usage(lg.total - taken)
        log_set_head(lg, lg.head[2] - taken)
        return
    end
    local m = lg.head and call('ZRANGEBYSCORE', lg.key, t0, t0)[1]
    local at, c = entry(m)
    if not at then return end
    local taken = (c < cost) and c or cost
    call('ZREM', lg.key, m)
    if c > taken then call('ZADD', lg.key, t0, member(t0, c - taken))
    else lg.count = lg.count - 1 end
    lg.total = usage(lg.total - taken)
    log_touch(lg)
end
local function cell_refund(rt, a, b, c, t0, cost, tat1)
    if rt.kind == 'b' then
        -- Its units were the last cost x T of the backlog at t0 (from x, the tat before
        -- them, on), and drain after what was before: what is left of them now is
        -- cost x T less (now - x) once now has passed x. x unknown (several rates):
        -- x >= t0 bounds it.
        local x = tat1 and tat1 - cost * rt.T or t0
        if x < t0 then x = t0 end
        local back = cost * rt.T - usage(now - x)
        if back > 0 then a = a - back end
        if a < now then a = now end
        return a, b, c
    end
    local s0 = t0 - t0 % rt.period
    if rt.start == s0 then return a, usage(b - cost), c end
    if rt.kind == 'c' and rt.start == s0 + rt.period then return a, b, usage(c - cost) end
    return a, b, c
end
local function refund_batch(op, p, k, count)
    for _ = 1, count do
        local rates, cost = sets[tonumber(ARGV[p])], tonumber(ARGV[p + 1])
        local t0, tat1 = match(ARGV[p + ITEM_ARGS], '^(%-?%d+):?(%d*)$')
        t0, tat1 = tonumber(t0), tonumber(tat1)
        p = p + ITEM_ARGS + LEASE_ARGS
        for r = 1, #rates do
            local rt = rates[r]
            local kk = k + rt.off
            if rt.kind == 'l' then
                local lg = log_of(rt, kk)
                log_refund(lg, t0, cost)
                log_verdict(rt, lg, 1, false)
            else
                local a, b, c = cell_load(rt, cell_of(kk, rt))
                a, b, c = cell_refund(rt, a, b, c, t0, cost, #rates == 1 and tat1 or nil)
                cell_verdict(rt, a, b, c, 1, false)
                cell_save(KEYS[kk], rt, a, b, c)
            end
        end
        k = k + rates.nk
    end
end
-- RESET deletes the keys; its verdict is a fresh state's (as ADJUST by 0 reports it).
local function reset_batch(op, p, k, count)
    for _ = 1, count do
        local rates = sets[tonumber(ARGV[p])]
        p = p + ITEM_ARGS
        for r = 1, #rates do
            local rt = rates[r]
            local key = KEYS[k + rt.off]
            if rt.kind == 'q' then
                -- (reset_after, always 0 here, carries the leases still held, which end)
                emit(1, rt.limit, tonumber(pcall_('ZCOUNT', key, fmt('(%.0f', now), '+inf')) or 0, 0)
                call('DEL', key)
            elseif rt.kind == 'l' then
                call('DEL', key, KEYS[k + rt.off + 1])
                stale[KEYS[k + rt.off + 1]] = true
                log_verdict(rt, new_log(rt, k + rt.off), 1, false)
            else
                call('DEL', key)
                stale[key] = true
                cells[key] = {0, 0, 0, rt.kind}
                local a, b, c = cell_load(rt, cells[key])
                cell_verdict(rt, a, b, c, 1, false)
            end
        end
        k = k + rates.nk
    end
end
-- A lease op in a call with other ops: lease_decide, as on the lease fast path.
local function lease_batch(op, p, k)
    local c, id = ARGV[p + 1], ARGV[p + ITEM_ARGS] .. ':'
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6] =
        lease_decide(op, sets[tonumber(ARGV[p])][1], KEYS[k], id, id .. c, num[c])
    n = n + LEASE_FIELDS
end
local RUN = {[OP_CHECK] = decide_batch, [OP_PEEK] = decide_batch, [OP_ADJUST] = adjust_batch,
    [OP_RESET] = reset_batch, [OP_REFUND] = refund_batch}
local function run(op, p, k, count)
    (RUN[op] or lease_batch)(op, p, k, count)
    for i = 1, #batch_logs do log_save(batch_logs[i]) end
end
-- A failed batch: its status is the error's text, its verdicts zeros; what it
-- touched is forgotten, to be read again from Redis.
local function fail(err, n0, fields, k, k2)
    n = n0 + 1
    out[n] = tostring(type(err) == 'table' and err.err or err)
    for _ = 1, fields do n = n + 1; out[n] = 0 end
    for x = k, k2 - 1 do
        cells[KEYS[x]], logs[KEYS[x]], stale[KEYS[x]] = nil, nil, true
    end
end
local batches, k = tonumber(ARGV[pos]), 1
pos = pos + 1
for _ = 1, batches do
    local op, count = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
    local p, k0, fields, n0 = pos + BATCH_ARGS, k, 0, n
    local lease = op >= OP_ACQUIRE and op <= OP_RENEW
    local per = (op >= OP_ACQUIRE) and ITEM_ARGS + LEASE_ARGS or ITEM_ARGS
    for i = 0, count - 1 do
        local rates = sets[tonumber(ARGV[p + per * i])]
        fields, k = fields + (lease and LEASE_FIELDS or VERDICT_FIELDS * #rates), k + rates.nk
    end
    pos = p + per * count
    n = n + 1
    out[n] = 0
    batch_logs = {}
    if moved[k0] then
        fail(moved[k0], n0, fields, k0, k)
    else
        local ok, err = pcall(run, op, p, k0, count)
        if not ok then fail(err, n0, fields, k0, k) end
    end
end
return out
