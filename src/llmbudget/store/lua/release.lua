-- release: ARGV[7] rid; reply: counters (an expired reservation's estimate is taken back)
local rid = ARGV[7]
local r = rk(rid)
local h = redis.call('HMGET', r, 'state', 'keys', 'amts', 'labels', 'ep', 'ec', 'ev')
if not h[1] then
  if redis.call('EXISTS', ek(rid)) == 1 then return reply({'0'}) end
  return redis.error_reply('LLMB_RESERVATION cannot release reservation ' .. rid ..
    ': unknown id')
end
local keys = cjson.decode(h[2])
local out = {'0'}
if h[1] == 'active' then
  local amts = cjson.decode(h[3])
  local order, deltas = deltas_of(keys,
    function() return 0 end,
    function(i) return -tonumber(amts[i]) end)
  local after = apply_deltas(order, deltas)
  redis.call('HSET', r, 'state', 'released')
  settle_keep(rid)
  push_after(out, keys, after)
elseif h[1] == 'expired' then
  -- charged at its estimate by a sweep; the caller says the call did not happen: take the
  -- charge back and settle its event at zero (keeping the time it was settled at)
  local amts = cjson.decode(h[3])
  local order, deltas = deltas_of(keys,
    function(i) return -tonumber(amts[i]) end,
    function() return 0 end)
  local after = apply_deltas(order, deltas)
  local at = CALLER_NOW
  if h[7] then
    local old = redis.call('XRANGE', EVENTS, h[7], h[7])
    if old[1] then
      local d = old[1][2]
      for i = 1, #d, 2 do
        if d[i] == 'd' then at = string.match(d[i + 1], '"at":([^,]+),') or at end
      end
    end
    redis.call('XDEL', EVENTS, h[7])
  end
  local ev = '{"id":' .. cjson.encode(rid) .. ',"at":' .. at .. ',"labels":' .. h[4] ..
    ',"p":0,"c":0,"ca":0,"re":0,"cost":null,"ep":' .. h[5] .. ',"ec":' .. h[6] .. ',"s":true}'
  local sid = add_event(ev)
  redis.call('HSET', r, 'state', 'released', 'ev', sid)
  settle_keep(rid)
  push_after(out, keys, after)
else
  push_existing(out, keys)
end
return reply(out)
