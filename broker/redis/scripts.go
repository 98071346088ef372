package redis

import goredis "github.com/redis/go-redis/v9"

// The count scripts read the time from Redis (TIME), so that the nodes'
// clocks never matter: every lease is measured on the one Redis clock.
// Redis 7 replicates a script's effects, not the script, so TIME is
// allowed in a script that writes.

// applyScript updates this node's count hash and renews its lease.
//
//	KEYS[1] the nodes sorted set, KEYS[2] this node's hash
//	ARGV[1] node id, ARGV[2] lease in ms, ARGV[3] "1" to replace the whole
//	hash, ARGV[4], ARGV[5], ... topic, count pairs (count "0" removes the topic)
//
// It returns {whether the hash existed before, its length after}: a hash
// that vanished although the node had topics in it means Redis lost it (a
// restart, or a lease that ran out while the node was cut off), and the
// node writes its whole table again. Dead nodes' entries are pruned, and
// the set itself expires a lease after the last node left or died.
var applyScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local existed = redis.call('EXISTS', KEYS[2])
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '0' then
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
local lease = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[2], lease)
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return {existed, redis.call('HLEN', KEYS[2])}
`)

// countScript sums a topic's count over the live nodes but one: one round
// trip, whatever the number of nodes.
//
//	KEYS[1] the nodes sorted set
//	ARGV[1] topic, ARGV[2] the asking node's id (left out), ARGV[3] the
//	prefix of the nodes' hash keys
var countScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sum = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if node ~= ARGV[2] then
    local c = redis.call('HGET', ARGV[3] .. node, ARGV[1])
    if c then sum = sum + tonumber(c) end
  end
end
return sum
`)

// leaveScript removes this node's counts at once (a clean Close).
//
//	KEYS[1] the nodes sorted set, KEYS[2] this node's hash; ARGV[1] node id
var leaveScript = goredis.NewScript(`
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`)
