-- Shared prelude, prepended to every llmbudget script (see store/redis.py).
-- KEYS[1] = "{prefix}:meta" (declares the ledger's hash tag: every key of a ledger is in one
--           Cluster slot, so every key a script touches is co-located with KEYS[1])
-- ARGV[1] = key base "{prefix}:"
-- ARGV[2] = caller's now (POSIX seconds, the governor's clock)
-- ARGV[3] = clock mode: "server" (lease expiry on Redis TIME) or "caller"
-- ARGV[4] = events stream MAXLEN (approximate trimming), ARGV[5] = retention seconds of
--           settled reservations / idempotency keys, ARGV[6] = counter expiry margin seconds
--
-- Replies are packed: one string, the items joined by the unit separator (\31; the client
-- refuses counter keys, budget names and window ids that contain it, and partitions are JSON,
-- which escapes it), split once by the client. A counter is 9 consecutive items: key budget
-- window_id window_end partition used reserved granted level.
local B = ARGV[1]
local CALLER_NOW = ARGV[2]
local MAXLEN = ARGV[4]
local RETENTION = ARGV[5]
local MARGIN = tonumber(ARGV[6])
local META = B .. 'meta'
local LEASES = B .. 'leases'
local COUNTERS = B .. 'counters'
local EVENTS = B .. 'events'
local FIELDS = {'budget', 'window_id', 'window_end', 'partition', 'used', 'reserved',
  'granted', 'level'}

if redis.call('EXISTS', META) == 0 then
  return redis.error_reply('LLMB_EVICTED the ledger marker ' .. META ..
    ' is gone (keys were evicted or flushed)')
end

-- the clock leases are kept on: Redis TIME in server mode (read once, only by the steps that
-- need it), the caller's now otherwise
local NOW_ = nil
local function now()
  if not NOW_ then
    NOW_ = tonumber(CALLER_NOW)
    if ARGV[3] == 'server' then
      local t = redis.call('TIME')
      NOW_ = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
  end
  return NOW_
end
local function skew() return now() - tonumber(CALLER_NOW) end  -- 0 in caller mode

local function fmt(n)
  if n == 0 then return '0' end
  return string.format('%.0f', n)
end
local function ffmt(n) return string.format('%.6f', n) end
local function ck(k) return B .. 'c:' .. k end
local function rk(r) return B .. 'r:' .. r end
local function ek(e) return B .. 'e:' .. e end

-- a counter's stored fields (HMGET of FIELDS; h[1] is false when the counter does not exist)
local function read(key) return redis.call('HMGET', ck(key), unpack(FIELDS)) end

-- append a counter to a flat reply
local function push(out, key, h)
  out[#out + 1] = key
  out[#out + 1] = h[1]
  out[#out + 1] = h[2]
  out[#out + 1] = h[3] or ''
  out[#out + 1] = h[4] or '[]'
  out[#out + 1] = h[5] or '0'
  out[#out + 1] = h[6] or '0'
  out[#out + 1] = h[7] or '0'
  out[#out + 1] = h[8] or '0'
end

-- append the counters that exist, for a list of keys
local function push_existing(out, keys)
  for _, key in ipairs(keys) do
    local h = read(key)
    if h[1] then push(out, key, h) end
  end
end

local function reply(out) return table.concat(out, '\31') end

-- forget ended windows' counters from the index (their hashes expire on their own)
local function prune_counters()
  redis.call('ZREMRANGEBYSCORE', COUNTERS, '-inf', '(' .. ffmt(now() - MARGIN))
end

-- create a counter that does not exist yet; return its fields as read() would
local function create(ch)
  -- ch = {key, budget, amount, cap|'', window_id, window_end|'', partition_json}
  local k = ck(ch[1])
  redis.call('HSET', k, 'budget', ch[2], 'window_id', ch[5], 'window_end', ch[6],
    'partition', ch[7], 'used', 0, 'reserved', 0, 'granted', 0, 'level', 0)
  if ch[6] ~= '' then
    redis.call('PEXPIREAT', k, fmt((tonumber(ch[6]) + MARGIN) * 1000))
    redis.call('ZADD', COUNTERS, ch[6], ch[1])
    prune_counters()
  else
    redis.call('ZADD', COUNTERS, '+inf', ch[1])
  end
  return {ch[2], ch[5], ch[6], ch[7], '0', '0', '0', '0'}
end

local function ensure(ch)
  local h = read(ch[1])
  if h[1] then return h end
  return create(ch)
end

-- the counters of some charges as found (one HMGET each, shared by repeated keys), and the
-- index of the first charge that does not fit (nil when all fit): the counting rule of
-- llmbudget.core.ledger.fits
local function check(charges)
  local found, bad = {}, nil
  for i, ch in ipairs(charges) do
    local h = found[ch[1]]
    if h == nil then
      h = read(ch[1])
      found[ch[1]] = h
    end
    if not bad and ch[4] ~= '' then
      local amount = tonumber(ch[3])
      if amount > 0 and tonumber(h[5] or '0') + tonumber(h[6] or '0') + amount >
          tonumber(ch[4]) + tonumber(h[7] or '0') then
        bad = i
      end
    end
  end
  return found, bad
end

-- the refused reply: {'0', index, counters as found (zeros for missing ones)}
local function refused(charges, found, bad)
  local out = {'0', tostring(bad)}
  for _, ch in ipairs(charges) do
    local h = found[ch[1]]
    if h[1] then
      push(out, ch[1], h)
    else
      push(out, ch[1], {ch[2], ch[5], ch[6], ch[7], '0', '0', '0', '0'})
    end
  end
  return reply(out)
end

-- add every charge to its counter's 'reserved' (creating missing counters), then the granted
-- reply {'1', counters after the step}
local function apply_reserved(charges, found)
  for _, ch in ipairs(charges) do
    local h = found[ch[1]]
    if not h[1] then
      h = create(ch)
      found[ch[1]] = h
    end
    h[6] = fmt(redis.call('HINCRBY', ck(ch[1]), 'reserved', ch[3]))
  end
  local out = {'1'}
  for _, ch in ipairs(charges) do push(out, ch[1], found[ch[1]]) end
  return out
end

-- add to 'used' and 'reserved' of existing counters (read, then both written with one HSET:
-- nothing interleaves a script); deltas = {key -> {used, reserved}} over the distinct keys in
-- order; return key -> fields after (missing counters are skipped)
local function apply_deltas(order, deltas)
  local after = {}
  for _, key in ipairs(order) do
    local h = read(key)
    if h[1] then
      local d = deltas[key]
      h[5] = fmt(tonumber(h[5] or '0') + d[1])
      h[6] = fmt(tonumber(h[6] or '0') + d[2])
      redis.call('HSET', ck(key), 'used', h[5], 'reserved', h[6])
      after[key] = h
    end
  end
  return after
end

-- gather per-key deltas: returns the distinct keys in first-seen order and key -> {u, r}
local function deltas_of(keys, used_of, reserved_of)
  local order, deltas = {}, {}
  for i, key in ipairs(keys) do
    local d = deltas[key]
    if not d then
      d = {0, 0}
      deltas[key] = d
      order[#order + 1] = key
    end
    d[1] = d[1] + used_of(i, key)
    d[2] = d[2] + reserved_of(i, key)
  end
  return order, deltas
end

local function push_after(out, keys, after)
  for _, key in ipairs(keys) do
    local h = after[key]
    if h then push(out, key, h) end
  end
end

local function settle_keep(rid)
  redis.call('ZREM', LEASES, rid)
  redis.call('EXPIRE', rk(rid), RETENTION)
end

local function add_event(json)
  return redis.call('XADD', EVENTS, 'MAXLEN', '~', MAXLEN, '*', 'd', json)
end

local function sweep()
  local due = redis.call('ZRANGEBYSCORE', LEASES, '-inf', '(' .. ffmt(now()))
  local n = 0
  for _, rid in ipairs(due) do
    local r = rk(rid)
    local h = redis.call('HMGET', r, 'state', 'keys', 'amts', 'labels', 'ep', 'ec')
    if not h[1] then
      error({err = 'LLMB_EVICTED reservation ' .. rid ..
        ' has a lease but no record (keys were evicted or deleted)'})
    end
    if h[1] == 'active' then
      local keys = cjson.decode(h[2])
      local amts = cjson.decode(h[3])
      local order, deltas = deltas_of(keys,
        function(i) return tonumber(amts[i]) end,
        function(i) return -tonumber(amts[i]) end)
      apply_deltas(order, deltas)
      local ev = '{"id":' .. cjson.encode(rid) .. ',"at":' .. CALLER_NOW .. ',"labels":' ..
        h[4] .. ',"p":' .. h[5] .. ',"c":' .. h[6] .. ',"ca":0,"re":0,"cost":null,"ep":' ..
        h[5] .. ',"ec":' .. h[6] .. ',"s":false}'
      local sid = add_event(ev)
      redis.call('HSET', r, 'state', 'expired', 'ev', sid)
      n = n + 1
    end
    redis.call('ZREM', LEASES, rid)
  end
  return n
end
