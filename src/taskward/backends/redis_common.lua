-- taskward Redis backend: the library every broker script is prefixed with.
--
-- It is not run on its own: redis.py prepends it to each redis_<op>.lua so
-- that every operation (prelude + effect) is ONE atomic script.
--
-- Calling convention of every broker script
--   KEYS[1]  P = "{ns}:"  the key prefix; every key below starts with it, so all
--            of a broker's keys share one hash tag (one cluster slot).
--   ARGV[1]  now (ms, from the caller's injected clock; never Redis TIME)
--   ARGV[2]  policy: shared | round_robin | work_stealing
--   ARGV[3]  lease_ms      ARGV[4] max_deliveries      ARGV[5] worker_timeout_ms
--   ARGV[6]  the calling worker, or "" (publish, dead_letters, stats)
--   ARGV[7..] the operation's own arguments
--
-- Keys (P = KEYS[1]):
--   P.."meta"     hash   seq (last seq), cur (round-robin cursor), swept
--                        (liveness watermark), acked (count), policy
--   P.."t:"..id   hash   one task: p payload JSON, pr priority (decimal text),
--                        m its queue member, st R|L|A|D, w queue owner / lease
--                        holder, d deliveries, e lease expiry, r dead-letter reason
--   P.."q"        zset   shared policy: the READY queue
--   P.."q:"..w    zset   per-worker policies: worker w's READY queue
--   P.."u"        zset   per-worker policies: READY tasks with no live worker
--   P.."leases"   zset   leased tasks scored by lease expiry
--   P.."seen"     zset   worker -> last call (ms)
--   P.."rot"      list   round-robin rotation order
--   P.."dead"     list   dead-lettered task ids, in the order they died
--
-- Queue and lease members are M = K .. %016d(seq) .. task_id where K is 16 hex
-- digits of 2**63-1-priority (computed in Python: Lua numbers are doubles, 64-bit
-- priorities are not). Every queue score is 0, so ZSET order (member bytes) is
-- exactly "highest priority, then smallest seq" for any 64-bit priority.

local P = KEYS[1]
local NOW = tonumber(ARGV[1])
local POLICY = ARGV[2]
local LEASE = tonumber(ARGV[3])
local MAXD = tonumber(ARGV[4])
local WTO = tonumber(ARGV[5])
local CALLER = ARGV[6]
local META = P .. 'meta'
local LEASES = P .. 'leases'
local SEEN = P .. 'seen'
local ROT = P .. 'rot'
local DEAD = P .. 'dead'
local UNASSIGNED = P .. 'u'
local PER_WORKER = POLICY ~= 'shared'

local function member_id(m) return string.sub(m, 33) end
local function member_seq(m) return string.sub(m, 17, 32) end
local function by_seq(a, b) return tonumber(member_seq(a)) < tonumber(member_seq(b)) end

-- Byte-order "<" (Python's str order for UTF-8); Lua's "<" follows the
-- server's LC_COLLATE, which redis-server takes from its environment.
local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function tkey(id) return P .. 't:' .. id end

local function qkey(w)
  if not PER_WORKER then return P .. 'q' end
  if w == nil or w == '' then return UNASSIGNED end
  return P .. 'q:' .. w
end

local function is_live(w)
  local s = redis.call('ZSCORE', SEEN, w)
  return s ~= false and s ~= nil and NOW - tonumber(s) < WTO
end

-- Reasons are codes; redis.py turns them into base.py's sentences.
local function die(id, reason)
  redis.call('HSET', tkey(id), 'st', 'D', 'r', reason, 'e', '')
  redis.call('RPUSH', DEAD, id)
end

-- The round-robin cursor (kept unwrapped, as base.assign does): the first live
-- worker at or after it, wrapping; the cursor moves just past that worker.
local rotation = nil
local function pick()
  if rotation == nil then rotation = redis.call('LRANGE', ROT, 0, -1) end
  local n = #rotation
  if n == 0 then return nil end
  local cur = tonumber(redis.call('HGET', META, 'cur') or '0')
  for k = 0, n - 1 do
    local i = (cur + k) % n
    local w = rotation[i + 1]
    if is_live(w) then
      redis.call('HSET', META, 'cur', i + 1)
      return w
    end
  end
  return nil
end

-- Put a READY task (queue member m) where the policy says.
local function place(m)
  local w = ''
  if PER_WORKER then w = pick() or '' end
  redis.call('ZADD', qkey(w), 0, m)
  redis.call('HSET', tkey(member_id(m)), 'st', 'R', 'w', w)
end

-- Step 1: the caller is seen now (new workers join the rotation).
local function touch()
  if CALLER == '' then return end
  if redis.call('ZADD', SEEN, 'GT', NOW, CALLER) == 1 then
    redis.call('RPUSH', ROT, CALLER)
  end
end

-- Step 2: every lease with expiry <= now ends, in seq order.
local function expire()
  local holders = {}
  local ended = redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW)
  if #ended == 0 then return holders end
  table.sort(ended, by_seq)
  for _, m in ipairs(ended) do
    redis.call('ZREM', LEASES, m)
    local id = member_id(m)
    local f = redis.call('HMGET', tkey(id), 'd', 'w')
    if tonumber(f[1]) >= MAXD then
      die(id, 'x' .. f[1])
    else
      redis.call('HSET', tkey(id), 'st', 'R', 'e', '')
      redis.call('ZADD', qkey(f[2]), 0, m)
      holders[f[2]] = true
    end
  end
  return holders
end

-- Step 3 (per-worker policies): READY tasks that are unassigned or in a
-- non-live worker's queue are reassigned in seq order by the cursor.
-- After every operation no non-live worker holds READY tasks, so only the
-- workers that died since the last sweep (watermark "swept") and the holders
-- of just-expired leases can hold any: the sweep is O(log n) when idle.
local function reassign(holders)
  local limit = NOW - WTO
  local dead = {}
  local swept = redis.call('HGET', META, 'swept')
  if swept == false or tonumber(swept) < limit then
    local lo = '-inf'
    if swept ~= false then lo = '(' .. swept end
    for _, w in ipairs(redis.call('ZRANGEBYSCORE', SEEN, lo, limit)) do dead[w] = true end
    redis.call('HSET', META, 'swept', limit)
  end
  for w in pairs(holders) do
    if w ~= '' and not is_live(w) then dead[w] = true end
  end
  local moved = {}
  local function grab(q)
    local items = redis.call('ZRANGE', q, 0, -1)
    if #items == 0 then return end
    redis.call('DEL', q)
    for _, m in ipairs(items) do moved[#moved + 1] = m end
  end
  for w in pairs(dead) do grab(qkey(w)) end
  if redis.call('EXISTS', UNASSIGNED) == 1
      and redis.call('ZCOUNT', SEEN, '(' .. limit, '+inf') > 0 then
    grab(UNASSIGNED)
  end
  if #moved == 0 then return end
  table.sort(moved, by_seq)
  for _, m in ipairs(moved) do place(m) end
end

-- The per-operation prelude of CONFORMANCE.md, in its order.
local function prelude()
  touch()
  local holders = expire()
  if PER_WORKER then reassign(holders) end
end

-- The task's fields {st, w, e, m, d} when `worker` holds an unexpired lease on
-- it; otherwise nil and the fields (for the error message).
local function held(id, worker)
  local f = redis.call('HMGET', tkey(id), 'st', 'w', 'e', 'm', 'd')
  if f[1] ~= 'L' or f[2] ~= worker or not (NOW < tonumber(f[3])) then return nil, f end
  return f, f
end

-- Lease the best READY task of queue q to `worker`; returns the delivery row
-- {id, payload, priority, deliveries, expiry, seq}.
local function lease_from(q, worker)
  local top = redis.call('ZPOPMIN', q)
  if #top == 0 then return nil end
  local m = top[1]
  local tk = tkey(member_id(m))
  local expiry = NOW + LEASE
  local d = redis.call('HINCRBY', tk, 'd', 1)
  redis.call('HSET', tk, 'st', 'L', 'w', worker, 'e', expiry)
  redis.call('ZADD', LEASES, expiry, m)
  local f = redis.call('HMGET', tk, 'p', 'pr')
  return {member_id(m), f[1], f[2], d, expiry, tonumber(member_seq(m))}
end

-- Work stealing: the other worker with the most READY tasks, ties to the
-- smallest id (byte order, which is code-point order for UTF-8).
local function victim(worker)
  if rotation == nil then rotation = redis.call('LRANGE', ROT, 0, -1) end
  local best, most = nil, 0
  for _, w in ipairs(rotation) do
    if w ~= worker then
      local n = redis.call('ZCARD', qkey(w))
      if n > most or (n == most and n > 0 and bytes_lt(w, best)) then best, most = w, n end
    end
  end
  return best
end

-- fetch(worker) after the prelude: nil when no queue it may draw from has a task.
local function fetch_one(worker)
  local row = lease_from(qkey(worker), worker)
  if row == nil and POLICY == 'work_stealing' then
    local v = victim(worker)
    if v ~= nil then row = lease_from(qkey(v), worker) end
  end
  return row
end
