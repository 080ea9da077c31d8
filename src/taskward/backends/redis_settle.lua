-- settle: prelude, then ack / requeue / dead-letter / extend tasks the caller
-- holds (all or none), then lease up to n more tasks to the caller.
-- fetch = settle nothing + n; heartbeat = settle nothing + 0;
-- ack_and_fetch = ack one + 1: one round trip.
-- ARGV[3]: action: ack | requeue | dead | extend ('' when no ids)
-- ARGV[4]: n, how many tasks to fetch afterwards
-- ARGV[5..]: the task ids to settle
-- Keys touched (P = KEYS[1]): the prelude's (P.."seen", P.."rot", P.."leases",
--   P.."s", P.."r", P.."dead", queues, P.."u", P.."meta" swept/cur), then
--   P.."s" (HMGET, HSET), P.."p" (HDEL on ack, HMGET on fetch), P.."leases",
--   P.."r" and P.."dead" (dead-lettering), the caller's queue and (work
--   stealing) the victim's queue.
-- Returns {'ok', new_expiry_or_0, rows} with rows a JSON array of
--   [member, expiry, payload], or {'notleased', id, state, holder} (only the
--   prelude ran).
prelude()
local action = ARGV[3]
local n = tonumber(ARGV[4])
local members, ids, st, holder = held(5, #ARGV, CALLER)
if members == nil then return {'notleased', ids, st, holder} end
local expiry = 0
local states = {}  -- id, state pairs, written with one HSET at the end
if action == 'extend' then
  expiry = NOW + LEASE
  local scored = {}
  for k, m in ipairs(members) do
    states[#states + 1] = ids[k]
    states[#states + 1] = pack('L', expiry, CALLER, m)
    scored[#scored + 1] = expiry
    scored[#scored + 1] = m
  end
  bulk('ZADD', LEASES, scored)
elseif action == 'ack' then
  for k = 1, #members do
    states[#states + 1] = ids[k]
    states[#states + 1] = 'A 0 0 '
  end
  bulk('HDEL', PAYLOAD, ids)  -- an acked task keeps only its id (idempotency key)
  bulk('ZREM', LEASES, members)
elseif #members > 0 then
  bulk('ZREM', LEASES, members)
  for k, m in ipairs(members) do
    local d = member_d(m)
    if action == 'requeue' and d < MAXD then
      redis.call('HSET', STATE, ids[k], pack('R', 0, CALLER, m))
      redis.call('ZADD', qkey(CALLER), 0, m)
    elseif action == 'requeue' then
      die(ids[k], m, 'n' .. d)
    else
      die(ids[k], m, 'k' .. d)
    end
  end
end
local rows = {}
if n > 0 then rows = fetch_n(CALLER, n, states) end
bulk('HSET', STATE, states)  -- in order: a later pair for the same id wins, as it would
return {'ok', expiry, '[' .. table.concat(rows, ',') .. ']'}
