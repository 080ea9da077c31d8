-- init: register the configured workers; a shared-policy client takes the
-- READY tasks of per-worker queues back into the shared queue, as the SQLite
-- backend does, so clients of different policies can share a namespace (a
-- shared-policy publisher's tasks wait in P.."u" until a per-worker client
-- assigns them at its next call).
-- Runs at RedisBroker construction and after restart().
-- ARGV[3..]: the configured workers, in rotation order.
-- Keys touched (P = KEYS[1]):
--   P.."seen" (ZADD NX: a configured worker counts as seen at its first start)
--   P.."rot"  (RPUSH: workers new to the rotation; LRANGE)
--   P.."q:"..w for every w in P.."rot", P.."u" (shared policy only)
-- Returns {'ok'}.
for i = 3, #ARGV do
  if redis.call('ZADD', SEEN, 'NX', NOW, ARGV[i]) == 1 then redis.call('RPUSH', ROT, ARGV[i]) end
end
if not PER_WORKER then
  for _, w in ipairs(redis.call('LRANGE', ROT, 0, -1)) do
    local q = P .. 'q:' .. w
    local items = redis.call('ZRANGE', q, 0, -1)
    if #items > 0 then
      local scored = {}
      for _, m in ipairs(items) do
        scored[#scored + 1] = 0
        scored[#scored + 1] = m
      end
      bulk('ZADD', UNASSIGNED, scored)
      redis.call('DEL', q)
    end
  end
end
return {'ok'}
