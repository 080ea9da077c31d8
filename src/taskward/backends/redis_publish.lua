-- publish: prelude, then insert a batch of tasks, all or none.
-- ARGV[3..]: groups of 3: task_id, priority key K (16 hex), payload JSON.
-- Keys touched (P = KEYS[1]): the prelude's (P.."seen", P.."rot", P.."leases",
--   P.."t:"..id of expired tasks, queues, P.."u", P.."dead", P.."meta" swept/cur),
--   then P.."t:"..id of every new task (EXISTS, HSET), P.."meta" (seq, cur),
--   the target queue P.."q" / P.."q:"..worker / P.."u".
-- Returns {'ok', first_seq} or {'dup', task_id} (only the prelude ran).
prelude()
local n = (#ARGV - 2) / 3
for i = 0, n - 1 do
  local id = ARGV[3 + 3 * i]
  if redis.call('EXISTS', tkey(id)) == 1 then return {'dup', id} end
end
local last = redis.call('HINCRBY', META, 'seq', n)
local first = last - n + 1
for i = 0, n - 1 do
  local b = 3 + 3 * i
  local id = ARGV[b]
  local m = ARGV[b + 1] .. string.format('%016d', first + i) .. id
  if PER_WORKER then
    redis.call('HSET', tkey(id), 'p', ARGV[b + 2], 'm', m, 'd', 0)
    place(m)
  else  -- the shared queue: one HSET with the state, one ZADD
    redis.call('HSET', tkey(id), 'p', ARGV[b + 2], 'm', m, 'd', 0, 'st', 'R', 'w', '')
    redis.call('ZADD', P .. 'q', 0, m)
  end
end
return {'ok', first}
