-- leader_write: a fenced write (base.write_accepted, atomically).
-- ARGV: now, node, epoch (decimal text), value JSON
-- Keys touched (P = KEYS[1]):
--   P.."lease"  hash holder, exp (read)
--   P.."epoch"  string counter (read; compared as text, so exact)
--   P.."fenced" list of accepted writes, JSON [epoch, node, value JSON] (RPUSH)
-- Returns 1 when accepted, 0 when refused (nothing changed).
local P = KEYS[1]
local NOW, NODE, EPOCH_ARG, VALUE = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local f = redis.call('HMGET', P .. 'lease', 'holder', 'exp')
local epoch = redis.call('GET', P .. 'epoch') or '0'
if epoch ~= EPOCH_ARG or f[1] ~= NODE or not f[2] or not (NOW < tonumber(f[2])) then
  return 0
end
redis.call('RPUSH', P .. 'fenced', cjson.encode({tonumber(epoch), NODE, VALUE}))
return 1
