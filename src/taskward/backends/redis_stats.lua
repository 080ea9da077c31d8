-- stats: read only. Counts as the prelude would leave them at `now`, without
-- running it (expired leases are counted as READY or DEAD, not changed).
-- Keys read (P = KEYS[1]): P.."meta" (seq), P.."dead", P.."leases", the READY
--   queues (P.."u", and P.."q:"..w for every w in P.."rot"),
--   P.."seen", P.."lease", P.."epoch".
-- ACKED is what remains: every published task is in exactly one state.
-- Returns {ready, leased, acked, dead, workers_live, leader or false, epoch}.
local published = tonumber(redis.call('HGET', META, 'seq') or '0')
local ready = 0
if PER_WORKER then
  ready = redis.call('ZCARD', UNASSIGNED)
  for _, w in ipairs(redis.call('LRANGE', ROT, 0, -1)) do ready = ready + redis.call('ZCARD', qkey(w)) end
else
  ready = redis.call('ZCARD', qkey(''))
end
local dead = redis.call('LLEN', DEAD)
local leased = redis.call('ZCARD', LEASES)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW)) do
  leased = leased - 1
  if member_d(m) >= MAXD then
    dead = dead + 1
  else
    ready = ready + 1
  end
end
local live = redis.call('ZCOUNT', SEEN, '(' .. (NOW - WTO), '+inf')
local lease = redis.call('HMGET', P .. 'lease', 'holder', 'exp')
local leader = false
if lease[1] and NOW < tonumber(lease[2]) then leader = lease[1] end
local epoch = tonumber(redis.call('GET', P .. 'epoch') or '0')
return {ready, leased, published - ready - leased - dead, dead, live, leader, epoch}
