-- extend: ARGV[7] rid, ARGV[8] charges json, ARGV[9] lease_until (caller clock)
local rid = ARGV[7]
local r = rk(rid)
local st = redis.call('HGET', r, 'state')
if st ~= 'active' then
  if not st then
    st = (redis.call('EXISTS', ek(rid)) == 1) and 'committed' or 'unknown'
  end
  return redis.error_reply('LLMB_RESERVATION cannot extend reservation ' .. rid ..
    ': it is ' .. st)
end
local charges = cjson.decode(ARGV[8])
local bad = first_refused(charges)
local out = {}
if bad then
  out[1] = 0
  out[2] = bad
  for _, ch in ipairs(charges) do out[#out + 1] = as_found(ch) end
  return out
end
local keys = cjson.decode(redis.call('HGET', r, 'keys'))
local amts = cjson.decode(redis.call('HGET', r, 'amts'))
for _, ch in ipairs(charges) do
  ensure(ch)
  redis.call('HINCRBY', ck(ch[1]), 'reserved', ch[3])
  local found = false
  for i, key in ipairs(keys) do
    if key == ch[1] then
      amts[i] = fmt(tonumber(amts[i]) + tonumber(ch[3]))
      found = true
      break
    end
  end
  if not found then
    keys[#keys + 1] = ch[1]
    amts[#amts + 1] = ch[3]
  end
end
out[1] = 1
for _, ch in ipairs(charges) do out[#out + 1] = state(ch[1]) end
local lease = tonumber(ARGV[9]) + SKEW
redis.call('HSET', r, 'keys', cjson.encode(keys), 'amts', cjson.encode(amts),
  'lease', ffmt(lease))
redis.call('ZADD', LEASES, ffmt(lease), rid)
return out
