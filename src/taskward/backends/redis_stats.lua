-- stats: read only. Counts as the prelude would leave them at `now`, without
-- running it (expired leases are counted as READY or DEAD, not changed).
-- Keys read (P = KEYS[1]): P.."meta" (seq, acked), P.."dead", P.."leases",
--   P.."t:"..id (field d) of expired leases, P.."seen", P.."lease", P.."epoch".
-- Returns {ready, leased, acked, dead, workers_live, leader or false, epoch}.
local published = tonumber(redis.call('HGET', META, 'seq') or '0')
local acked = tonumber(redis.call('HGET', META, 'acked') or '0')
local dead = redis.call('LLEN', DEAD)
local leased = redis.call('ZCARD', LEASES)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW)) do
  leased = leased - 1
  if tonumber(redis.call('HGET', tkey(member_id(m)), 'd')) >= MAXD then dead = dead + 1 end
end
local live = redis.call('ZCOUNT', SEEN, '(' .. (NOW - WTO), '+inf')
local lease = redis.call('HMGET', P .. 'lease', 'holder', 'exp')
local leader = false
if lease[1] and NOW < tonumber(lease[2]) then leader = lease[1] end
local epoch = tonumber(redis.call('GET', P .. 'epoch') or '0')
return {published - acked - dead - leased, leased, acked, dead, live, leader, epoch}
