-- release: ARGV[7] rid; reply: states
local rid = ARGV[7]
local r = rk(rid)
local h = redis.call('HMGET', r, 'state', 'keys', 'amts')
if not h[1] then
  if redis.call('EXISTS', ek(rid)) == 1 then return {} end
  return redis.error_reply('LLMB_RESERVATION cannot release reservation ' .. rid ..
    ': unknown id')
end
local keys = cjson.decode(h[2])
if h[1] == 'active' then
  local amts = cjson.decode(h[3])
  for i, key in ipairs(keys) do add(key, 'reserved', fmt(-tonumber(amts[i]))) end
  redis.call('HSET', r, 'state', 'released')
  settle_keep(rid)
end
local out = {}
for _, key in ipairs(keys) do local s = state(key); if s then out[#out + 1] = s end end
return out
