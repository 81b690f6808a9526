-- close: ARGV[7] counter keys json; closes each existing, open counter for the rest of its
-- window (a confidence gate); reply: ['0', the keys closed now...]
local out = {'0'}
for _, key in ipairs(cjson.decode(ARGV[7])) do
  local k = ck(key)
  local h = redis.call('HMGET', k, 'budget', 'closed')
  if h[1] and h[2] ~= '1' then
    redis.call('HSET', k, 'closed', '1')
    out[#out + 1] = key
  end
end
return reply(out)
