-- counters: ARGV[7] 'keys' or 'active', ARGV[8] keys json or active_at ('' = all)
-- reply: ['0', the counters that exist...]
local keys
if ARGV[7] == 'keys' then
  keys = cjson.decode(ARGV[8])
elseif ARGV[8] == '' then
  keys = redis.call('ZRANGE', COUNTERS, 0, -1)
else
  keys = redis.call('ZRANGEBYSCORE', COUNTERS, '(' .. ARGV[8], '+inf')
end
local out = {'0'}
push_existing(out, keys)
return reply(out)
