-- record: ARGV[7] event id, ARGV[8] charges json, ARGV[9] labels json,
-- ARGV[10] usage json fragment; reply: [duplicate ('0'|'1'), counters...]
local id = ARGV[7]
local charges = cjson.decode(ARGV[8])
if redis.call('EXISTS', ek(id)) == 1 then
  local out = {'1'}
  local keys = {}
  for _, ch in ipairs(charges) do keys[#keys + 1] = ch[1] end
  push_existing(out, keys)
  return reply(out)
end
local found = {}
for _, ch in ipairs(charges) do
  local h = found[ch[1]]
  if h == nil then
    h = ensure(ch)
    found[ch[1]] = h
  end
  h[5] = fmt(redis.call('HINCRBY', ck(ch[1]), 'used', ch[3]))
end
local out = {'0'}
for _, ch in ipairs(charges) do push(out, ch[1], found[ch[1]]) end
local ev = '{"id":' .. cjson.encode(id) .. ',"at":' .. CALLER_NOW .. ',"labels":' .. ARGV[9] ..
  ',' .. ARGV[10] .. ',"ep":null,"ec":null,"s":true}'
local sid = add_event(ev)
redis.call('SET', ek(id), sid, 'EX', RETENTION)
return reply(out)
