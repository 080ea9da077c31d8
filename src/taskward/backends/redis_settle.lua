-- settle: prelude, then ack / requeue / dead-letter / extend tasks the caller
-- holds (all or none), then lease up to n more tasks to the caller.
-- fetch = settle nothing + n; heartbeat = settle nothing + 0;
-- ack_and_fetch = ack one + 1: one round trip.
-- ARGV[3]: action: ack | requeue | dead | extend ('' when no ids)
-- ARGV[4]: n, how many tasks to fetch afterwards
-- ARGV[5..]: the task ids to settle
-- Keys touched (P = KEYS[1]): the prelude's (P.."seen", P.."rot", P.."leases",
--   P.."t:"..id of expired tasks, queues, P.."u", P.."dead", P.."meta" swept/cur),
--   P.."t:"..id of settled and fetched tasks, P.."leases", P.."dead", the caller's queue and (work stealing) the victim's queue.
-- Returns {'ok', new_expiry_or_0, rows} with rows a JSON array of
--   [member, deliveries, expiry, payload],
--   or {'notleased', id, state, holder} (only the prelude ran).
prelude()
local action = ARGV[3]
local n = tonumber(ARGV[4])
local fields = {}
for i = 5, #ARGV do
  local f, raw = held(ARGV[i], CALLER)
  if f == nil then return {'notleased', ARGV[i], raw[1], raw[2]} end
  fields[i] = f
end
local expiry = 0
local ended = {}
for i = 5, #ARGV do
  local id, f = ARGV[i], fields[i]
  local tk, m = tkey(id), f[4]
  if action == 'extend' then
    expiry = NOW + LEASE
    redis.call('HSET', tk, 'e', expiry)
    redis.call('ZADD', LEASES, expiry, m)
  else
    ended[#ended + 1] = m
    if action == 'ack' then
      redis.call('HSET', tk, 'st', 'A', 'e', '', 'p', '')  -- the payload is not needed any more
    elseif action == 'requeue' and tonumber(f[5]) < MAXD then
      redis.call('HSET', tk, 'st', 'R', 'e', '')
      redis.call('ZADD', qkey(CALLER), 0, m)
    elseif action == 'requeue' then
      die(id, 'n' .. f[5])
    else
      die(id, 'k' .. f[5])
    end
  end
end
bulk('ZREM', LEASES, ended)
local rows = {}
if n > 0 then rows = fetch_n(CALLER, n) end
return {'ok', expiry, '[' .. table.concat(rows, ',') .. ']'}
