-- resolve_approval: ARGV[7] id, ARGV[8] '1' approve / '0' deny, ARGV[9] tokens or '',
-- ARGV[10] by, ARGV[11] note; reply: 'ok', 'notfound' or 'approved'
local a = B .. 'a:' .. ARGV[7]
local h = redis.call('HMGET', a, 'state', 'requested', 'key', 'budget', 'window_id',
  'window_end', 'partition')
if not h[1] then return 'notfound' end
if h[1] == 'approved' then return 'approved' end
local grant = '0'
local st = 'denied'
if ARGV[8] == '1' then
  st = 'approved'
  grant = (ARGV[9] ~= '') and ARGV[9] or h[2]
  -- the counter as the request described it (so a grant in a window creates a counter that
  -- expires with the window)
  ensure({h[3], h[4], '0', '', h[5], h[6] or '', h[7] or '[]'})
  redis.call('HINCRBY', ck(h[3]), 'granted', grant)
end
redis.call('HSET', a, 'state', st, 'granted', grant, 'resolved_at', CALLER_NOW,
  'resolved_by', ARGV[10], 'note', ARGV[11])
return 'ok'
