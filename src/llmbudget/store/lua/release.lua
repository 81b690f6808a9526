-- release: ARGV[7] rid; reply: counters
local rid = ARGV[7]
local r = rk(rid)
local h = redis.call('HMGET', r, 'state', 'keys', 'amts')
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
else
  push_existing(out, keys)
end
return reply(out)
