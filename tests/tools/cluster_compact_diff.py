#!/usr/bin/python3
"""cluster_compact_diff.py CLUSTER_PORT PLAIN_PORT SCRIPT SEED STEPS

Sends the same random sequence of compact calls (single-rate token bucket and gcra
CHECKs, redis_script.lua's fast path) to daemon/redis_script.lua in its two forms, on an
injected clock: the cluster variant (allow-cross-slot-keys, keys in ARGV grouped by
slot, as redis_batch.c sends a node call) on a one-node Redis Cluster, and the plain
form (declared KEYS) on a plain redis-server. A node call decides each key with one
command in the common case (SET ... GET of the key as an idle bucket, then decided again
on what it held if it was not idle); the plain form reads every key first (MGET). Both
must give the same figures for every item and leave the same value in every key; every
key either form wrote has a TTL. (TTLs are not compared: they follow real time, and the
injected clock runs far ahead of it; one about to end is pushed back in both, so that no
key vanishes between the two forms' calls.) Now and then a key gets a bucket as the general path
writes it (unmarked "<tat>"), in both. At the end, on the node: a key holding a number no
rlimitd writes (beyond what a charge may leave, or infinite; marked or not) is denied,
answered, and keeps its value; a key of another type is overwritten as an empty bucket.
Prints the mismatches and exits 1 if there are any.
"""
import os
import random
import sys

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rlcluster import key_slot  # noqa: E402


def main():
    cport, pport, script, seed, steps = sys.argv[1:6]
    rc, rp = redis.Redis(port=int(cport)), redis.Redis(port=int(pport))
    src = open(script).read()
    shac = rc.script_load('#!lua flags=allow-cross-slot-keys\n' + src)
    shap = rp.script_load(src)
    rnd = random.Random(int(seed))
    now = 1800000000000000
    # limit sets: token bucket 5/s burst 5 (T 200 ms), gcra 10/s burst 3 (T 100 ms)
    sets = [['1', '3', '5', '1000000', '5'], ['1', '4', '10', '1000000', '3']]
    names = ['p:k%d' % k for k in range(6)]
    slot = {n: key_slot(('rl:{%s}:0' % n).encode()) for n in names}
    bad, compared = [], 0
    for step in range(int(steps)):
        now += rnd.choice([0, 1000, 50000, 199999, 200000, 400000, 3000000])
        if rnd.random() < 0.03:
            # a bucket as the general path writes it (unmarked "<tat>", TTL ending at its tat)
            k, ahead = rnd.randrange(6), rnd.randint(1, 1000000)
            for r in (rp, rc):
                r.set('rl:{%s}:0' % names[k], '%d' % (now + ahead), px=60000)
        n = rnd.randint(1, 6)
        items = [(rnd.randrange(6), rnd.randint(1, 2), rnd.choice([1, 1, 1, 2, 3, 5, 7]))
                 for _ in range(n)]
        head = [str(now), str(len(sets))] + [x for s in sets for x in s] + [str(-n)]
        keys = ['rl:{%s}:0' % names[k] for k, _, _ in items]
        tail = head[:]
        for _, s, c in items:
            tail += [str(s), str(c)]
        plain = rp.evalsha(shap, n, *keys, *tail)
        # the node call as rlimitd sends a compact one: items sorted by slot (stable: a
        # key's items keep their order), no run counts (G = -(the key count))
        order = sorted(range(n), key=lambda i: slot[names[items[i][0]]])
        ctail = head[:]
        for i in order:
            ctail += [str(items[i][1]), str(items[i][2])]
        args = ['K', str(-n)] + [keys[i] for i in order] + ctail
        node = rc.evalsha(shac, 0, *args)
        for j, i in enumerate(order):
            compared += 1
            want, got = plain[1 + 3 * i:4 + 3 * i], node[1 + 3 * j:4 + 3 * j]
            if want != got:
                bad.append('step %d item %r (key, set, cost): plain %r, node call %r'
                           % (step, items[i], want, got))
        for name in names:
            key = 'rl:{%s}:0' % name
            vp, vc = rp.get(key), rc.get(key)
            if vp != vc:
                bad.append('step %d key %s: plain holds %r, cluster node %r' % (step, key, vp, vc))
            if vc is not None and rc.pttl(key) == -1:
                bad.append('step %d key %s: no TTL on the cluster node' % (step, key))
            # (a TTL of a few ms on Redis's real clock would let a key vanish between the
            # two forms' calls: TTLs about to end are pushed back, alike in both)
            for r in (rp, rc):
                if 0 <= r.pttl(key) < 2000:
                    r.pexpire(key, 60000)
        if len(bad) > 20:
            break
    # numbers rlimitd does not write (beyond a charge's bound; "<n> " reads as marked): a
    # CHECK is denied, answered (no error), and the value put back as it was
    # A key of another type counts as empty and is overwritten.
    key, one = 'rl:{p:odd}:0', ['K', '-1', 'rl:{p:odd}:0', str(now), '1'] + sets[0] + ['-1', '1', '1']
    for odd in ('1e22', 'inf', '1e22 ', 'inf '):
        rc.set(key, odd, px=600000)
        got = rc.evalsha(shac, 0, *one)
        if not isinstance(got[1], int) or got[1] % 2 != 0 or rc.get(key) != odd.encode():
            bad.append('a key holding %r: answered %r, holds %r after' % (odd, got[1:], rc.get(key)))
    rc.delete(key)
    # a node call without run counts is refused unless it is compact (the other forms read
    # slot by slot)
    try:
        got = rc.evalsha(shac, 0, 'K', '-1', key, str(now), '1', *sets[0], '0')
        bad.append('a runless general call was answered %r' % (got,))
    except redis.exceptions.ResponseError as e:
        if 'runs missing' not in str(e):
            bad.append('a runless general call failed with %r' % (str(e),))
    rc.rpush(key, 'x')
    got = rc.evalsha(shac, 0, *one)
    if got[1] != 9 or rc.type(key) != b'string':
        bad.append('a key holding a list: answered %r, its type after %r' % (got[1:], rc.type(key)))
    for line in bad[:20]:
        print(line)
    print('%d items compared over %d steps, %d mismatches' % (compared, int(steps), len(bad)))
    sys.exit(1 if bad or compared == 0 else 0)


if __name__ == '__main__':
    main()
