-- dead_letters: prelude (no caller), then the dead-letter store in death order.
-- Keys touched (P = KEYS[1]): the prelude's (P.."leases", P.."t:"..id of expired
--   tasks, queues, P.."u", P.."dead", P.."meta" swept/cur), then P.."dead" and
--   P.."t:"..id (field r) of each dead task (read).
-- Returns {{id, reason_code}, ...}.
prelude()
local out = {}
for _, id in ipairs(redis.call('LRANGE', DEAD, 0, -1)) do
  out[#out + 1] = {id, redis.call('HGET', tkey(id), 'r')}
end
return out
