-- Shared prelude of every llmbudget step (see store/redis.py). Loaded once as a Redis 7
-- function library (each step a function whose body starts with begin()), or, on older
-- servers, prepended to each step's script.
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
-- which escapes it), split once by the client. A counter is 12 consecutive items: key budget
-- window_id window_end partition used reserved granted level borrowed lent closed.

-- per-call state, set by begin() (module-level: in a function library these locals outlive
-- one call, and Redis runs one call at a time, so begin() resets every one of them)
local B, CALLER_NOW, CLOCK, MAXLEN, RETENTION, MARGIN
local META, LEASES, COUNTERS, EVENTS
local NOW_ = nil
local FIELDS = {'budget', 'window_id', 'window_end', 'partition', 'used', 'reserved',
  'granted', 'level', 'borrowed', 'lent', 'closed'}

-- start a call: read the common arguments; an error reply when the ledger marker is gone
local function begin(argv)
  if argv[1] ~= B then
    B = argv[1]
    META, LEASES, COUNTERS, EVENTS = B .. 'meta', B .. 'leases', B .. 'counters', B .. 'events'
  end
  CALLER_NOW, CLOCK, MAXLEN, RETENTION = argv[2], argv[3], argv[4], argv[5]
  MARGIN = tonumber(argv[6])
  NOW_ = nil
  if redis.call('EXISTS', META) == 0 then
    return redis.error_reply('LLMB_EVICTED the ledger marker ' .. META ..
      ' is gone (keys were evicted or flushed)')
  end
  return nil
end

-- the clock leases are kept on: Redis TIME in server mode (read once, only by the steps that
-- need it), the caller's now otherwise
local function now()
  if not NOW_ then
    NOW_ = tonumber(CALLER_NOW)
    if CLOCK == 'server' then
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
  out[#out + 1] = h[9] or '0'
  out[#out + 1] = h[10] or '0'
  out[#out + 1] = h[11] or '0'
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
    'partition', ch[7], 'used', 0, 'reserved', 0, 'granted', 0, 'level', 0, 'borrowed', 0,
    'lent', 0, 'closed', 0)
  if ch[6] ~= '' then
    redis.call('PEXPIREAT', k, fmt((tonumber(ch[6]) + MARGIN) * 1000))
    redis.call('ZADD', COUNTERS, ch[6], ch[1])
    prune_counters()
  else
    redis.call('ZADD', COUNTERS, '+inf', ch[1])
  end
  return {ch[2], ch[5], ch[6], ch[7], '0', '0', '0', '0', '0', '0', '0'}
end

local function ensure(ch)
  local h = read(ch[1])
  if h[1] then return h end
  return create(ch)
end

-- ---- the atomic reserve: llmbudget.core.ledger.apply_reserve restated ----------------------
-- A charge is {key, budget, amount, cap|'', window_id, window_end|'', partition_json,
-- donors}; a donor is {key, budget, cap, min_reserve, priority, window_id, window_end|'',
-- partition_json}. A working state is a table of the stored fields (n = numbers).

local function state_of(key, h)
  if not h[1] then return nil end
  return {key = key, b = h[1], w = h[2], we = h[3] or '', p = h[4] or '[]',
    used = tonumber(h[5] or '0'), reserved = tonumber(h[6] or '0'),
    granted = tonumber(h[7] or '0'), level = tonumber(h[8] or '0'),
    borrowed = tonumber(h[9] or '0'), lent = tonumber(h[10] or '0'),
    closed = h[11] == '1', raw = h}
end

local function blank(key, b, w, we, p)
  return {key = key, b = b, w = w, we = we, p = p, used = 0, reserved = 0, granted = 0,
    level = 0, borrowed = 0, lent = 0, closed = false, new = true}
end

local function copy(st)
  local c = {}
  for k, v in pairs(st) do c[k] = v end
  return c
end

local function headroom(st) return st.granted + st.borrowed - st.lent end

-- llmbudget.core.ledger.fits
local function fits(st, amount, cap)
  if cap == nil then return true end
  if st == nil then return amount <= cap end
  if st.closed then return false end
  return amount <= 0 or st.used + st.reserved + amount <= cap + headroom(st)
end

-- llmbudget.core.ledger.spare
local function spare(d, st)
  if st == nil then return math.max(0, d.cap - d.min_reserve) end
  return math.max(0, d.cap + headroom(st) - st.used - st.reserved - d.min_reserve)
end

-- llmbudget.core.ledger.plan_borrow: {{donor, amount}, ...} or nil
local function plan_borrow(st, cap, amount, donors)
  if st ~= nil and st.closed then return nil end
  local total = st and (st.used + st.reserved) or 0
  local short = total + amount - (cap + (st and headroom(st) or 0))
  if short <= 0 then return {} end
  local items = {}
  for i, x in ipairs(donors) do
    local d, ds = x[1], x[2]
    local used = ds and (ds.used + ds.reserved) or 0
    local share = used / math.max(1, d.cap + (ds and headroom(ds) or 0))
    items[#items + 1] = {d = d, st = ds, pr = d.priority, share = share, i = i}
  end
  table.sort(items, function(a, b)
    if a.pr ~= b.pr then return a.pr < b.pr end
    if a.share ~= b.share then return a.share < b.share end
    return a.i < b.i
  end)
  local plan = {}
  for _, it in ipairs(items) do
    local take = math.min(short, spare(it.d, it.st))
    if take > 0 then
      plan[#plan + 1] = {it.d, take}
      short = short - take
    end
    if short == 0 then return plan end
  end
  return nil
end

local function donor_of(x)
  return {key = x[1], budget = x[2], cap = tonumber(x[3]), min_reserve = tonumber(x[4]),
    priority = tonumber(x[5]), w = x[6], we = x[7], p = x[8]}
end

-- the whole reserve, nothing written: returns ok, then either (work, order, after,
-- transfers) or (index of the refused charge, found)
local function try(charges)
  local found, work, order, after, transfers = {}, {}, {}, {}, {}
  local function load(key)
    if found[key] == nil then
      found[key] = state_of(key, read(key)) or false
    end
  end
  local function get(key)
    local w = work[key]
    if w then return w end
    return found[key] or nil
  end
  local function put(st)
    if not work[st.key] then order[#order + 1] = st.key end
    work[st.key] = st
  end
  local function own(ch)
    local st = get(ch[1])
    if st == nil then return blank(ch[1], ch[2], ch[5], ch[6], ch[7]) end
    st = copy(st)
    if st.we == '' and ch[6] ~= '' then  -- made by an approval
      st.w, st.we, st.p = ch[5], ch[6], ch[7]
    end
    return st
  end
  for _, ch in ipairs(charges) do load(ch[1]) end
  for i, ch in ipairs(charges) do
    local amount = tonumber(ch[3])
    local cap = nil
    if ch[4] ~= '' then cap = tonumber(ch[4]) end
    local st = get(ch[1])
    if not fits(st, amount, cap) then
      local plan = nil
      local donors = ch[8] or {}
      if #donors > 0 and amount > 0 then
        local ds = {}
        for j, x in ipairs(donors) do
          local d = donor_of(x)
          if not work[d.key] then load(d.key) end
          ds[j] = {d, get(d.key)}
        end
        plan = plan_borrow(st, cap, amount, ds)
      end
      if plan == nil then return false, i, found end
      local me = own(ch)
      for _, pa in ipairs(plan) do
        local d, take = pa[1], pa[2]
        local dst = get(d.key)
        if dst == nil then dst = blank(d.key, d.budget, d.w, d.we, d.p) else dst = copy(dst) end
        dst.lent = dst.lent + take
        put(dst)
        me.borrowed = me.borrowed + take
        transfers[#transfers + 1] = {d.key, d.budget, ch[1], ch[2], take}
      end
      put(me)
    end
    local me = own(ch)
    me.reserved = me.reserved + amount
    put(me)
    after[#after + 1] = me
  end
  return true, work, order, after, transfers
end

-- a working state as stored fields: the fields a reserve never changes (used, granted,
-- level) are passed on as read, only the changed ones are formatted again
local function fields_of(st)
  local raw = st.raw
  if raw then
    return {st.b, st.w, st.we, st.p, raw[5] or '0', fmt(st.reserved), raw[7] or '0',
      raw[8] or '0', fmt(st.borrowed), fmt(st.lent), st.closed and '1' or '0'}
  end
  return {st.b, st.w, st.we, st.p, fmt(st.used), fmt(st.reserved), fmt(st.granted),
    fmt(st.level), fmt(st.borrowed), fmt(st.lent), st.closed and '1' or '0'}
end

-- the refused reply: {'0', index, counters as found (zeros for missing ones)}
local function refused(charges, found, bad)
  local out = {'0', tostring(bad)}
  for _, ch in ipairs(charges) do
    local st = found[ch[1]]
    if st then
      push(out, ch[1], fields_of(st))
    else
      push(out, ch[1], {ch[2], ch[5], ch[6], ch[7], '0', '0', '0', '0', '0', '0', '0'})
    end
  end
  return reply(out)
end

-- the common reserve, restated for speed: every charged counter is distinct, open, not
-- made by an approval, and fits as found (so no pool is asked). Writes and returns the
-- granted reply as reserve_step would, or nil (nothing written) to let try() decide.
local function fast_reserve(charges)
  local hs, seen = {}, {}
  for i, ch in ipairs(charges) do
    local key = ch[1]
    if seen[key] then return nil end
    seen[key] = true
    local h = read(key)
    local amount = tonumber(ch[3])
    if h[1] then
      if h[11] == '1' or ((h[3] or '') == '' and ch[6] ~= '') then return nil end
      if ch[4] ~= '' and amount > 0 and tonumber(h[5] or '0') + tonumber(h[6] or '0') + amount
          > tonumber(ch[4]) + tonumber(h[7] or '0') + tonumber(h[9] or '0')
            - tonumber(h[10] or '0') then
        return nil
      end
    elseif ch[4] ~= '' and amount > tonumber(ch[4]) then
      return nil
    end
    hs[i] = h
  end
  local out = {'1', '0'}
  for i, ch in ipairs(charges) do
    local h, key = hs[i], ch[1]
    if h[1] then
      local r = fmt(tonumber(h[6] or '0') + tonumber(ch[3]))
      redis.call('HSET', ck(key), 'reserved', r)
      push(out, key, {h[1], h[2], h[3] or '', h[4] or '[]', h[5] or '0', r, h[7] or '0',
        h[8] or '0', h[9] or '0', h[10] or '0', '0'})
    else
      create(ch)
      local r = fmt(tonumber(ch[3]))
      redis.call('HSET', ck(key), 'reserved', r)
      push(out, key, {ch[2], ch[5], ch[6], ch[7], '0', r, '0', '0', '0', '0', '0'})
    end
  end
  return out
end

-- run the reserve; on refusal return the refused reply (a string), else write back every
-- touched counter (creating missing ones, donors too) and return the granted reply as a
-- table: {'1', n transfers, transfers (5 items each), counters after...} (the touched
-- counters are written here, not sent back: the client needs only the charged ones)
local function reserve_step(charges)
  local quick = fast_reserve(charges)
  if quick then return quick end
  local ok, a, b, c, d = try(charges)
  if not ok then return refused(charges, b, a) end
  local work, order, after, transfers = a, b, c, d
  local out = {'1', tostring(#transfers)}
  for _, t in ipairs(transfers) do
    out[#out + 1] = t[1]
    out[#out + 1] = t[2]
    out[#out + 1] = t[3]
    out[#out + 1] = t[4]
    out[#out + 1] = fmt(t[5])
  end
  for _, key in ipairs(order) do
    local st = work[key]
    if st.new then
      create({key, st.b, '0', '', st.w, st.we, st.p})
    end
    if st.borrowed == 0 and st.lent == 0 and not st.new and (st.raw[9] or '0') == '0'
        and (st.raw[10] or '0') == '0' then
      redis.call('HSET', ck(key), 'reserved', fmt(st.reserved))
    else
      redis.call('HSET', ck(key), 'reserved', fmt(st.reserved), 'borrowed',
        fmt(st.borrowed), 'lent', fmt(st.lent))
    end
  end
  for _, st in ipairs(after) do push(out, st.key, fields_of(st)) end
  return out
end

-- add to 'used' and 'reserved' of existing counters (read, then both written with one HSET:
-- nothing interleaves a script); deltas = {key -> {used, reserved}} over the distinct keys in
-- order; return key -> fields after (missing counters are skipped; none when quiet)
local function apply_deltas(order, deltas, quiet)
  local after = {}
  for _, key in ipairs(order) do
    local d = deltas[key]
    if quiet then  -- nobody reads the counters after: read and write only what changes
      local h = redis.call('HMGET', ck(key), 'used', 'reserved')
      if h[1] then
        redis.call('HSET', ck(key), 'used', fmt(tonumber(h[1]) + d[1]),
          'reserved', fmt(tonumber(h[2] or '0') + d[2]))
      end
    else
      local h = read(key)
      if h[1] then
        h[5] = fmt(tonumber(h[5] or '0') + d[1])
        h[6] = fmt(tonumber(h[6] or '0') + d[2])
        redis.call('HSET', ck(key), 'used', h[5], 'reserved', h[6])
        after[key] = h
      end
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
    local h = redis.call('HMGET', r, 'state', 'keys', 'amts', 'labels', 'ep', 'ec', 'at')
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
      -- stamped with the reservation's time, so it falls in its counters' window (a record
      -- written before 'at' was kept falls back to now)
      local ev = '{"id":' .. cjson.encode(rid) .. ',"at":' .. (h[7] or CALLER_NOW) ..
        ',"labels":' .. h[4] .. ',"p":' .. h[5] .. ',"c":' .. h[6] ..
        ',"ca":0,"re":0,"cost":null,"ep":' .. h[5] .. ',"ec":' .. h[6] .. ',"s":false}'
      local sid = add_event(ev)
      redis.call('HSET', r, 'state', 'expired', 'ev', sid)
      n = n + 1
    end
    redis.call('ZREM', LEASES, rid)
  end
  return n
end
