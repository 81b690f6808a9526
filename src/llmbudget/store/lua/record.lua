-- record: ARGV[7] event id, ARGV[8] charges json, ARGV[9] labels json,
-- ARGV[10] usage json fragment; reply: {duplicate(0|1), states...}
local id = ARGV[7]
local charges = cjson.decode(ARGV[8])
local out = {}
if redis.call('EXISTS', ek(id)) == 1 then
  out[1] = 1
  for _, ch in ipairs(charges) do local s = state(ch[1]); if s then out[#out + 1] = s end end
  return out
end
out[1] = 0
for _, ch in ipairs(charges) do
  ensure(ch)
  redis.call('HINCRBY', ck(ch[1]), 'used', ch[3])
end
for _, ch in ipairs(charges) do out[#out + 1] = state(ch[1]) end
local ev = '{"id":' .. cjson.encode(id) .. ',"at":' .. CALLER_NOW .. ',"labels":' .. ARGV[9] ..
  ',' .. ARGV[10] .. ',"ep":null,"ec":null,"s":true}'
local sid = add_event(ev)
redis.call('SET', ek(id), sid, 'EX', RETENTION)
return out
