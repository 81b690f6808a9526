-- Shared prelude, prepended to every llmbudget script (see store/redis.py).
-- ARGV[1] = key base "{prefix}:" (one hash tag: every key of a ledger is in one Cluster slot)
-- ARGV[2] = caller's now (POSIX seconds, the governor's clock)
-- ARGV[3] = clock mode: "server" (lease expiry on Redis TIME) or "caller"
-- ARGV[4] = events stream MAXLEN (approximate trimming), ARGV[5] = retention seconds of
--           settled reservations / idempotency keys, ARGV[6] = counter expiry margin seconds
local B = ARGV[1]
local CALLER_NOW = ARGV[2]
local MAXLEN = ARGV[4]
local RETENTION = ARGV[5]
local MARGIN = tonumber(ARGV[6])
local META = B .. 'meta'
local LEASES = B .. 'leases'
local COUNTERS = B .. 'counters'
local EVENTS = B .. 'events'

if redis.call('EXISTS', META) == 0 then
  return redis.error_reply('LLMB_EVICTED the ledger marker ' .. META ..
    ' is gone (keys were evicted or flushed)')
end

local NOW = tonumber(CALLER_NOW)
if ARGV[3] == 'server' then
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local SKEW = NOW - tonumber(CALLER_NOW)  -- 0 in caller mode

local function fmt(n)
  if n == 0 then return '0' end
  return string.format('%.0f', n)
end
local function ffmt(n) return string.format('%.6f', n) end
local function ck(k) return B .. 'c:' .. k end
local function rk(r) return B .. 'r:' .. r end
local function ek(e) return B .. 'e:' .. e end

-- a counter as a flat reply: key, budget, window_id, window_end ('' = none), partition json,
-- used, reserved, granted, level
local function state(key)
  local h = redis.call('HMGET', ck(key), 'budget', 'window_id', 'window_end', 'partition',
    'used', 'reserved', 'granted', 'level')
  if not h[1] then return nil end
  return {key, h[1], h[2], h[3] or '', h[4] or '[]', h[5] or '0', h[6] or '0', h[7] or '0',
    h[8] or '0'}
end

local function ensure(ch)
  -- ch = {key, budget, amount, cap|'', window_id, window_end|'', partition_json}
  local k = ck(ch[1])
  if redis.call('EXISTS', k) == 0 then
    redis.call('HSET', k, 'budget', ch[2], 'window_id', ch[5], 'window_end', ch[6],
      'partition', ch[7], 'used', 0, 'reserved', 0, 'granted', 0, 'level', 0)
    if ch[6] ~= '' then
      local until_ms = (tonumber(ch[6]) + MARGIN) * 1000
      redis.call('PEXPIREAT', k, fmt(until_ms))
      redis.call('ZADD', COUNTERS, ch[6], ch[1])
    else
      redis.call('ZADD', COUNTERS, '+inf', ch[1])
    end
  end
end

local function as_found(ch)
  return state(ch[1]) or {ch[1], ch[2], ch[5], ch[6], ch[7], '0', '0', '0', '0'}
end

-- check every charge against the counters as found; nil when all fit, else the index
local function first_refused(charges)
  for i, ch in ipairs(charges) do
    local amount = tonumber(ch[3])
    if ch[4] ~= '' and amount > 0 then
      local h = redis.call('HMGET', ck(ch[1]), 'used', 'reserved', 'granted')
      local total = tonumber(h[1] or '0') + tonumber(h[2] or '0') + amount
      if total > tonumber(ch[4]) + tonumber(h[3] or '0') then return i end
    end
  end
  return nil
end

local function add(key, field, amount)
  local k = ck(key)
  if redis.call('EXISTS', k) == 1 then redis.call('HINCRBY', k, field, amount) end
end

local function settle_keep(rid)
  redis.call('ZREM', LEASES, rid)
  redis.call('EXPIRE', rk(rid), RETENTION)
end

local function add_event(json)
  return redis.call('XADD', EVENTS, 'MAXLEN', '~', MAXLEN, '*', 'd', json)
end

local function sweep()
  local due = redis.call('ZRANGEBYSCORE', LEASES, '-inf', '(' .. ffmt(NOW))
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
      for i, key in ipairs(keys) do
        add(key, 'used', amts[i])
        add(key, 'reserved', fmt(-tonumber(amts[i])))
      end
      local ev = '{"id":' .. cjson.encode(rid) .. ',"at":' .. CALLER_NOW .. ',"labels":' ..
        h[4] .. ',"p":' .. h[5] .. ',"c":' .. h[6] .. ',"ca":0,"re":0,"cost":null,"ep":' ..
        h[5] .. ',"ec":' .. h[6] .. ',"s":false}'
      local sid = add_event(ev)
      redis.call('HSET', r, 'state', 'expired', 'ev', sid)
      n = n + 1
    end
    redis.call('ZREM', LEASES, rid)
  end
  local stale = NOW - MARGIN
  redis.call('ZREMRANGEBYSCORE', COUNTERS, '-inf', '(' .. ffmt(stale))
  return n
end
