-- counters: ARGV[7] 'keys' or 'active', ARGV[8] keys json or active_at ('' = all)
-- reply: states of the counters that exist
local out = {}
local keys
if ARGV[7] == 'keys' then
  keys = cjson.decode(ARGV[8])
elseif ARGV[8] == '' then
  keys = redis.call('ZRANGE', COUNTERS, 0, -1)
else
  keys = redis.call('ZRANGEBYSCORE', COUNTERS, '(' .. ARGV[8], '+inf')
end
for _, key in ipairs(keys) do local s = state(key); if s then out[#out + 1] = s end end
return out
