-- extend: ARGV[7] rid, ARGV[8] charges json, ARGV[9] lease_until (caller clock)
-- reply: as reserve's
local rid = ARGV[7]
local r = rk(rid)
local h = redis.call('HMGET', r, 'state', 'keys', 'amts')
if h[1] ~= 'active' then
  local st = h[1]
  if not st then
    st = (redis.call('EXISTS', ek(rid)) == 1) and 'committed' or 'unknown'
  end
  return redis.error_reply('LLMB_RESERVATION cannot extend reservation ' .. rid ..
    ': it is ' .. st)
end
local charges = cjson.decode(ARGV[8])
local out = reserve_step(charges)
if type(out) == 'string' then return out end  -- refused
local keys = cjson.decode(h[2])
local amts = cjson.decode(h[3])
for _, ch in ipairs(charges) do
  local seen = false
  for i, key in ipairs(keys) do
    if key == ch[1] then
      amts[i] = fmt(tonumber(amts[i]) + tonumber(ch[3]))
      seen = true
      break
    end
  end
  if not seen then
    keys[#keys + 1] = ch[1]
    amts[#amts + 1] = ch[3]
  end
end
local lease = ffmt(tonumber(ARGV[9]) + skew())
redis.call('HSET', r, 'keys', cjson.encode(keys), 'amts', cjson.encode(amts), 'lease', lease)
redis.call('ZADD', LEASES, lease, rid)
return reply(out)
