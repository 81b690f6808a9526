-- reserve: ARGV[7] rid, ARGV[8] charges json, ARGV[9] labels json, ARGV[10] est prompt,
-- ARGV[11] est completion, ARGV[12] lease_until (caller clock), ARGV[13] '1' to settle
-- expired leases first (the client asks at most once a second; sweep.lua forces it)
-- reply: granted: ['1', transfers, counters after] (see reserve_step),
-- refused: ['0', refused index, counters as found...]
local rid = ARGV[7]
local charges = cjson.decode(ARGV[8])
if ARGV[13] == '1' then sweep() end
if redis.call('EXISTS', rk(rid), ek(rid)) > 0 then
  return redis.error_reply('LLMB_INUSE reservation id ' .. rid .. ' is already in use')
end
local out = reserve_step(charges)
if type(out) == 'string' then return out end  -- refused
-- what the reservation holds, one entry per distinct key
local keys, amts, at = {}, {}, {}
for _, ch in ipairs(charges) do
  local i = at[ch[1]]
  if i then
    amts[i] = fmt(tonumber(amts[i]) + tonumber(ch[3]))
  else
    keys[#keys + 1] = ch[1]
    amts[#amts + 1] = ch[3]
    at[ch[1]] = #keys
  end
end
local lease = ffmt(tonumber(ARGV[12]) + skew())
redis.call('HSET', rk(rid), 'state', 'active', 'keys', cjson.encode(keys),
  'amts', cjson.encode(amts), 'labels', ARGV[9], 'ep', ARGV[10], 'ec', ARGV[11],
  'lease', lease, 'at', CALLER_NOW)
redis.call('ZADD', LEASES, lease, rid)
return reply(out)
