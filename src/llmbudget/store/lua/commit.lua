-- commit: ARGV[7] rid, ARGV[8] actual json {key: "amount"}, ARGV[9] usage json fragment
-- (the event's "p","c","ca","re","cost" members, without braces)
-- reply: {duplicate(0|1), states...}
local rid = ARGV[7]
local r = rk(rid)
local h = redis.call('HMGET', r, 'state', 'keys', 'amts', 'labels', 'ep', 'ec', 'ev')
local out = {}
if not h[1] then
  if redis.call('EXISTS', ek(rid)) == 1 then return {1} end
  return redis.error_reply('LLMB_RESERVATION cannot commit reservation ' .. rid ..
    ': unknown id')
end
local keys = cjson.decode(h[2])
if h[1] == 'committed' then
  out[1] = 1
  for _, key in ipairs(keys) do local s = state(key); if s then out[#out + 1] = s end end
  return out
end
if h[1] == 'released' then
  return redis.error_reply('LLMB_RESERVATION cannot commit reservation ' .. rid ..
    ': it was released')
end
local amts = cjson.decode(h[3])
local actual = cjson.decode(ARGV[8])
for i, key in ipairs(keys) do
  local a = tonumber(actual[key] or '0')
  local held = tonumber(amts[i])
  if h[1] == 'expired' then
    add(key, 'used', fmt(a - held))
  else
    add(key, 'used', fmt(a))
    add(key, 'reserved', fmt(-held))
  end
end
if h[7] then redis.call('XDEL', EVENTS, h[7]) end
local ev = '{"id":' .. cjson.encode(rid) .. ',"at":' .. CALLER_NOW .. ',"labels":' .. h[4] ..
  ',' .. ARGV[9] .. ',"ep":' .. h[5] .. ',"ec":' .. h[6] .. ',"s":true}'
local sid = add_event(ev)
redis.call('SET', ek(rid), sid, 'EX', RETENTION)
redis.call('HSET', r, 'state', 'committed', 'ev', sid)
settle_keep(rid)
out[1] = 0
for _, key in ipairs(keys) do local s = state(key); if s then out[#out + 1] = s end end
return out
