-- taskward Redis backend: the library every broker script is prefixed with.
--
-- It is not run on its own: redis.py prepends it to each redis_<op>.lua so
-- that every operation (prelude + effect) is ONE atomic script. It is cut into
-- sections ("--@section NAME" lines): the head always, "perworker" only for the
-- round_robin and work_stealing policies, "core" (the prelude) and "fetch" only
-- for the operations that use them, so a script carries only what it runs.
--
-- Calling convention of every broker script
--   KEYS[1]  P = "{ns}:"  the key prefix; every key below starts with it, so all
--            of a broker's keys share one hash tag (one cluster slot).
--   ARGV[1]  now (ms, from the caller's injected clock; never Redis TIME)
--   ARGV[2]  the calling worker, or "" (publish, dead_letters, stats)
--   ARGV[3..] the operation's own arguments
-- The configuration (POLICY, LEASE, MAXD, WTO) is not passed per call: redis.py
-- prepends it to the script text as constants, one script (SHA) per configuration.
--
-- Keys (P = KEYS[1]):
--   P.."meta"     hash   seq (last seq), cur (round-robin cursor), swept
--                        (liveness watermark)
--   P.."s"        hash   task id -> packed state "ST E WLEN W M" (see pack)
--   P.."p"        hash   task id -> payload JSON (dropped when the task is acked)
--   P.."r"        hash   task id -> dead-letter reason code
--   P.."u"        zset   READY tasks in no worker's queue: the shared queue, and
--                        under per-worker policies the unassigned tasks
--   P.."q:"..w    zset   per-worker policies: worker w's READY queue
--   P.."leases"   zset   leased tasks scored by lease expiry
--   P.."seen"     zset   worker -> last call (ms)
--   P.."rot"      list   round-robin rotation order
--   P.."dead"     list   dead-lettered task ids, in the order they died
-- Task state lives in a few namespace-wide hashes rather than one hash per task,
-- so a batch of n tasks costs a handful of commands (HMGET/HSET with n fields),
-- not n of them.
--
-- Queue and lease members are M = K .. %016d(seq) .. %08d(deliveries) .. task_id
-- where K is 16 hex digits of 2**63-1-priority (computed in Python: Lua numbers
-- are doubles, 64-bit priorities are not). Every score in a queue is 0, so ZSET
-- order (member bytes, decided within K .. seq, which is unique) is exactly
-- "highest priority, then smallest seq" for any 64-bit priority. The delivery
-- count travels in the member, so leasing and expiring need no extra read.

local P = KEYS[1]
local NOW = tonumber(ARGV[1])
local CALLER = ARGV[2]
local META = P .. 'meta'
local STATE = P .. 's'
local PAYLOAD = P .. 'p'
local REASON = P .. 'r'
local LEASES = P .. 'leases'
local SEEN = P .. 'seen'
local ROT = P .. 'rot'
local DEAD = P .. 'dead'
local UNASSIGNED = P .. 'u'
local PER_WORKER = POLICY ~= 'shared'

local function member_id(m) return string.sub(m, 41) end
local function member_d(m) return tonumber(string.sub(m, 33, 40)) end
local function with_d(m, d) return string.sub(m, 1, 32) .. string.format('%08d', d) .. string.sub(m, 41) end
local function seq_order(a, b)
  return tonumber(string.sub(a, 17, 32)) < tonumber(string.sub(b, 17, 32))
end

-- A task's state: ST in R|L|A|D, E the lease expiry (0 unless leased), W the
-- queue owner (READY) or lease holder (LEASED), M its current member.
local function pack(st, e, w, m)
  return st .. ' ' .. string.format('%d', e) .. ' ' .. #w .. ' ' .. w .. m
end
local function unpack_state(v)
  local st, e, wl, rest = string.match(v, '^(%u) (%-?%d+) (%d+) (.*)$')
  wl = tonumber(wl)
  return st, tonumber(e), string.sub(rest, 1, wl), string.sub(rest, wl + 1)
end

local function qkey(w)
  if not PER_WORKER or w == nil or w == '' then return UNASSIGNED end
  return P .. 'q:' .. w
end

-- Many-argument commands, in chunks that unpack() can take.
local function bulk(cmd, key, items)
  for i = 1, #items, 4000 do
    redis.call(cmd, key, unpack(items, i, math.min(#items, i + 3999)))
  end
end

-- HMGET of many fields, chunked the same way; returns one list.
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, 4000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(#fields, i + 3999)))
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end

-- Reasons are codes; redis.py turns them into base.py's sentences.
local function die(id, m, reason)
  redis.call('HSET', STATE, id, pack('D', 0, '', m))
  redis.call('HSET', REASON, id, reason)
  redis.call('RPUSH', DEAD, id)
end

-- Defined by the "perworker" section; nil (and never called) under shared.
local place, reassign, victim

--@section perworker

local function is_live(w)
  local s = redis.call('ZSCORE', SEEN, w)
  return s ~= false and s ~= nil and NOW - tonumber(s) < WTO
end

-- Byte-order "<" (Python's str order for UTF-8); Lua's "<" follows the
-- server's LC_COLLATE, which redis-server takes from its environment.
local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
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

-- Put a READY task (member m) in the queue of the next live worker.
place = function(m)
  local w = pick() or ''
  redis.call('ZADD', qkey(w), 0, m)
  redis.call('HSET', STATE, member_id(m), pack('R', 0, w, m))
end

-- Step 3: READY tasks that are unassigned or in a non-live worker's queue are
-- reassigned in seq order by the cursor. After every operation no non-live
-- worker holds READY tasks, so only the workers that died since the last sweep
-- (watermark "swept") and the holders of just-expired leases can hold any:
-- the sweep is O(log n) when idle.
reassign = function(holders)
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
  table.sort(moved, seq_order)
  for _, m in ipairs(moved) do place(m) end
end

-- Work stealing: the other worker with the most READY tasks, ties to the
-- smallest id (byte order).
victim = function(worker)
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

--@section core

-- The per-operation prelude of CONFORMANCE.md, in its order.
local function prelude()
  -- 1. the caller is seen now (a new worker joins the rotation)
  if CALLER ~= '' and redis.call('ZADD', SEEN, 'GT', NOW, CALLER) == 1 then
    redis.call('RPUSH', ROT, CALLER)
  end
  -- 2. every lease with expiry <= now ends, in seq order
  local holders = {}
  local ended = redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW)
  if #ended > 0 then
    table.sort(ended, seq_order)
    bulk('ZREM', LEASES, ended)
    for _, m in ipairs(ended) do
      local id = member_id(m)
      local d = member_d(m)
      if d >= MAXD then
        die(id, m, 'x' .. d)
      else
        local _, _, w = unpack_state(redis.call('HGET', STATE, id))
        redis.call('HSET', STATE, id, pack('R', 0, w, m))
        redis.call('ZADD', qkey(w), 0, m)
        holders[w] = true
      end
    end
  end
  -- 3. (per-worker policies) reassign what sits unassigned or with a dead worker
  if PER_WORKER then reassign(holders) end
end

--@section fetch

-- The states of `ids` (ARGV positions first..last) when `worker` holds an
-- unexpired lease on every one: a list of members; otherwise nil and the first
-- refused id with its state letter and holder (for the error message).
local function held(first, last, worker)
  local ids = {}
  for i = first, last do ids[#ids + 1] = ARGV[i] end
  local members = {}
  if #ids == 0 then return members, ids end
  local states = hmget(STATE, ids)
  for k = 1, #ids do
    local v = states[k]
    if not v then return nil, ids[k], false, false end
    local st, e, w, m = unpack_state(v)
    if st ~= 'L' or w ~= worker or not (NOW < e) then return nil, ids[k], st, w end
    members[k] = m
  end
  return members, ids
end

-- Lease up to n best READY tasks of queue q to `worker`, appending one JSON
-- text per delivery to rows: [member, expiry, payload] (the payload is JSON
-- already, so it is embedded as is; redis.py decodes all rows at once), and
-- the new states (id, state pairs) to `states`, which the caller writes with
-- one HSET. Returns how many were leased.
local function lease_from(q, worker, n, rows, states)
  local top = redis.call('ZPOPMIN', q, n)
  if #top == 0 then return 0 end
  local expiry = NOW + LEASE
  local ids, scored = {}, {}
  for i = 1, #top, 2 do ids[#ids + 1] = member_id(top[i]) end
  local payloads = hmget(PAYLOAD, ids)
  for k, id in ipairs(ids) do
    local m = with_d(top[2 * k - 1], member_d(top[2 * k - 1]) + 1)
    states[#states + 1] = id
    states[#states + 1] = pack('L', expiry, worker, m)
    scored[#scored + 1] = expiry
    scored[#scored + 1] = m
    rows[#rows + 1] = '[' .. cjson.encode(m) .. ',' .. string.format('%d', expiry) .. ','
      .. payloads[k] .. ']'
  end
  bulk('ZADD', LEASES, scored)
  return #ids
end

-- n fetches by `worker` after the prelude, as n calls at this instant would do:
-- its own queue first; with work stealing, one task at a time from the peer
-- with the most READY tasks (recomputed after each steal).
-- States go to `states` (see lease_from).
local function fetch_n(worker, n, states)
  local rows = {}
  local got = lease_from(qkey(worker), worker, n, rows, states)
  while got < n and POLICY == 'work_stealing' do
    local v = victim(worker)
    if v == nil then break end
    got = got + lease_from(qkey(v), worker, 1, rows, states)
  end
  return rows
end
