-- tick: a node's periodic election step (base.decide_tick, atomically).
-- Not prefixed with the broker library: election operations run no prelude.
-- ARGV: now, node, election_lease_ms, member_timeout_ms
-- Keys touched (P = KEYS[1]):
--   P.."members" zset node -> last tick (ZADD GT)
--   P.."lease"   hash holder, exp: the leadership lease
--   P.."epoch"   string counter: the fencing token, INCR at every grant,
--                changed in the same script as P.."lease"
-- Returns {'granted'|'renewed'|'resigned'|'none', epoch}.
local P = KEYS[1]
local NOW, NODE = tonumber(ARGV[1]), ARGV[2]
local EL, MTO = tonumber(ARGV[3]), tonumber(ARGV[4])
local MEMBERS, LEASE, EPOCH = P .. 'members', P .. 'lease', P .. 'epoch'

-- Node ids compare as Python strings: byte order, not the server's locale.
local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

redis.call('ZADD', MEMBERS, 'GT', NOW, NODE)
local smaller = false
for _, other in ipairs(redis.call('ZRANGEBYSCORE', MEMBERS, '(' .. (NOW - MTO), '+inf')) do
  if bytes_lt(other, NODE) then smaller = true break end
end
local f = redis.call('HMGET', LEASE, 'holder', 'exp')
local epoch = tonumber(redis.call('GET', EPOCH) or '0')
local held = f[1] and f[2] and NOW < tonumber(f[2])
if held and f[1] == NODE then
  if smaller then
    redis.call('DEL', LEASE)
    return {'resigned', epoch}
  end
  redis.call('HSET', LEASE, 'exp', NOW + EL)
  return {'renewed', epoch}
end
if held or smaller then return {'none', epoch} end
epoch = redis.call('INCR', EPOCH)
redis.call('HSET', LEASE, 'holder', NODE, 'exp', NOW + EL)
return {'granted', epoch}
