-- init: pin the namespace's policy and register the configured workers.
-- Runs once per RedisBroker construction and after restart().
-- ARGV[3..]: the configured workers, in rotation order.
-- Keys touched (P = KEYS[1]):
--   P.."meta" (field policy: read, set when absent)
--   P.."seen" (ZADD NX: a configured worker counts as seen at its first start)
--   P.."rot"  (RPUSH: workers new to the rotation)
-- Returns {'ok'} or {'policy', stored_policy} (nothing changed).
local stored = redis.call('HGET', META, 'policy')
if stored and stored ~= POLICY then return {'policy', stored} end
if not stored then redis.call('HSET', META, 'policy', POLICY) end
for i = 3, #ARGV do
  if redis.call('ZADD', SEEN, 'NX', NOW, ARGV[i]) == 1 then redis.call('RPUSH', ROT, ARGV[i]) end
end
return {'ok'}
