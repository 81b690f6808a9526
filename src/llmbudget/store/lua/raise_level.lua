-- raise_level: ARGV[7] counter key, ARGV[8] level; reply: the previous level
local k = ck(ARGV[7])
local prev = redis.call('HGET', k, 'level')
if not prev then return tonumber(ARGV[8]) end
if tonumber(ARGV[8]) > tonumber(prev) then redis.call('HSET', k, 'level', ARGV[8]) end
return tonumber(prev)
