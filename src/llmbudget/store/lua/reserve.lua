-- reserve: ARGV[7] rid, ARGV[8] charges json, ARGV[9] labels json, ARGV[10] est prompt,
-- ARGV[11] est completion, ARGV[12] lease_until (caller clock)
-- reply: {1, states...} granted, {0, refused_index, states...} refused
local rid = ARGV[7]
local charges = cjson.decode(ARGV[8])
sweep()
if redis.call('EXISTS', rk(rid)) == 1 or redis.call('EXISTS', ek(rid)) == 1 then
  return redis.error_reply('LLMB_INUSE reservation id ' .. rid .. ' is already in use')
end
local bad = first_refused(charges)
local out = {}
if bad then
  out[1] = 0
  out[2] = bad
  for _, ch in ipairs(charges) do out[#out + 1] = as_found(ch) end
  return out
end
local keys, amts = {}, {}
for _, ch in ipairs(charges) do
  ensure(ch)
  redis.call('HINCRBY', ck(ch[1]), 'reserved', ch[3])
  keys[#keys + 1] = ch[1]
  amts[#amts + 1] = ch[3]
end
out[1] = 1
for _, ch in ipairs(charges) do out[#out + 1] = state(ch[1]) end
local lease = tonumber(ARGV[12]) + SKEW
redis.call('HSET', rk(rid), 'state', 'active', 'keys', cjson.encode(keys),
  'amts', cjson.encode(amts), 'labels', ARGV[9], 'ep', ARGV[10], 'ec', ARGV[11],
  'lease', ffmt(lease))
redis.call('ZADD', LEASES, ffmt(lease), rid)
return out
