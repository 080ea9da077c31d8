-- publish: prelude, then insert a batch of tasks, all or none.
-- ARGV[3..]: groups of 3: task_id, priority key K (16 hex), payload JSON.
-- Keys touched (P = KEYS[1]): the prelude's (P.."seen", P.."rot", P.."leases",
--   P.."t:"..id of expired tasks, queues, P.."u", P.."dead", P.."meta" swept/cur),
--   then P.."t:"..id of every new task (EXISTS, HSET), P.."meta" (seq, cur),
--   the target queue P.."q" / P.."q:"..worker / P.."u".
-- Returns {'ok', first_seq} or {'dup', task_id} (only the prelude ran).
prelude()
local n = (#ARGV - 2) / 3
local keys = {}
for i = 0, n - 1 do keys[i + 1] = tkey(ARGV[3 + 3 * i]) end
for c = 1, n, 4000 do  -- one EXISTS per chunk; find the culprit only when there is one
  if redis.call('EXISTS', unpack(keys, c, math.min(n, c + 3999))) > 0 then
    for i = c, math.min(n, c + 3999) do
      if redis.call('EXISTS', keys[i]) == 1 then return {'dup', ARGV[3 * i]} end
    end
  end
end
local last = redis.call('HINCRBY', META, 'seq', n)
local first = last - n + 1
local queued = {}
for i = 0, n - 1 do
  local b = 3 + 3 * i
  local m = ARGV[b + 1] .. string.format('%016d', first + i) .. ARGV[b]
  if PER_WORKER then
    redis.call('HSET', keys[i + 1], 'p', ARGV[b + 2], 'm', m, 'd', 0)
    place(m)
  else  -- the shared queue: one HSET per task, then one ZADD for the batch
    redis.call('HSET', keys[i + 1], 'p', ARGV[b + 2], 'm', m, 'd', 0, 'st', 'R', 'w', '')
    queued[#queued + 1] = 0
    queued[#queued + 1] = m
  end
end
for c = 1, #queued, 8000 do
  redis.call('ZADD', P .. 'q', unpack(queued, c, math.min(#queued, c + 7999)))
end
return {'ok', first}
