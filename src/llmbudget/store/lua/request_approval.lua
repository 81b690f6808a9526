-- request_approval: ARGV[7] id, ARGV[8] counter key, ARGV[9] created_at, ARGV[10..] the
-- approval's hash fields (name, value, ...); reply: the id of the stored request
local pointer = B .. 'ak:' .. ARGV[8]
local existing = redis.call('GET', pointer)
if existing then
  local st = redis.call('HGET', B .. 'a:' .. existing, 'state')
  if st == 'pending' or st == 'denied' then return existing end
end
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', B .. 'a:' .. ARGV[7], unpack(fields))
redis.call('ZADD', B .. 'approvals', ARGV[9], ARGV[7])
redis.call('SET', pointer, ARGV[7])
return ARGV[7]
