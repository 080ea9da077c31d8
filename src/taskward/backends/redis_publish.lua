-- publish: prelude, then insert a batch of tasks, all or none.
-- ARGV[3..]: groups of 3: task_id, priority key K (16 hex), payload JSON.
-- Keys touched (P = KEYS[1]): the prelude's (P.."seen", P.."rot", P.."leases",
--   P.."s", P.."r", P.."dead", queues, P.."u", P.."meta" swept/cur), then
--   P.."s" (HMGET: is any id known?, HSET: the new states), P.."meta" (seq, cur),
--   P.."p" (HSET payloads), the target queue P.."u" (shared, unassigned) or
--   P.."q:"..worker.
-- Returns {'ok', first_seq} or {'dup', task_id} (only the prelude ran).
prelude()
local n = (#ARGV - 2) / 3
local ids = {}
for i = 1, n do ids[i] = ARGV[3 * i] end
local known = hmget(STATE, ids)
for i = 1, n do
  if known[i] then return {'dup', ids[i]} end
end
local last = redis.call('HINCRBY', META, 'seq', n)
local first = last - n + 1
local payloads, states, queued = {}, {}, {}
for i = 1, n do
  local b = 3 * i
  local id = ids[i]
  local m = ARGV[b + 1] .. string.format('%016d', first + i - 1) .. '00000000' .. id
  payloads[#payloads + 1] = id
  payloads[#payloads + 1] = ARGV[b + 2]
  if PER_WORKER then
    place(m)  -- the cursor moves task by task
  else
    states[#states + 1] = id
    states[#states + 1] = pack('R', 0, '', m)
    queued[#queued + 1] = 0
    queued[#queued + 1] = m
  end
end
bulk('HSET', PAYLOAD, payloads)
bulk('HSET', STATE, states)
bulk('ZADD', UNASSIGNED, queued)
return {'ok', first}
