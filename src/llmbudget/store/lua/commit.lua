-- commit: ARGV[7] rid, ARGV[8] actual json {key: "amount"}, ARGV[9] usage json fragment
-- (the event's "p","c","ca","re","cost" members, without braces), ARGV[10] '1' for a quiet
-- reply (a pipelined commit: the client answers from its own view and wants only errors)
-- reply: [duplicate ('0'|'1'), counters...]; quiet: '0'
local rid = ARGV[7]
local r = rk(rid)
local h = redis.call('HMGET', r, 'state', 'keys', 'amts', 'labels', 'ep', 'ec', 'ev', 'at')
if not h[1] then
  if redis.call('EXISTS', ek(rid)) == 1 then return reply({'1'}) end
  return redis.error_reply('LLMB_RESERVATION cannot commit reservation ' .. rid ..
    ': unknown id')
end
local keys = cjson.decode(h[2])
if h[1] == 'committed' then
  local out = {'1'}
  push_existing(out, keys)
  return reply(out)
end
if h[1] == 'released' then
  return redis.error_reply('LLMB_RESERVATION cannot commit reservation ' .. rid ..
    ': it was released')
end
local amts = cjson.decode(h[3])
local actual = cjson.decode(ARGV[8])
local expired = h[1] == 'expired'
local order, deltas = deltas_of(keys,
  function(i, key)
    local a = tonumber(actual[key] or '0')
    if expired then return a - tonumber(amts[i]) end
    return a
  end,
  function(i)
    if expired then return 0 end
    return -tonumber(amts[i])
  end)
local quiet = ARGV[10] == '1'
local after = apply_deltas(order, deltas, quiet)
if h[7] then redis.call('XDEL', EVENTS, h[7]) end
-- stamped with the reservation's time (its counters' window); a record written before 'at'
-- was kept falls back to now
local ev = '{"id":' .. cjson.encode(rid) .. ',"at":' .. (h[8] or CALLER_NOW) ..
  ',"labels":' .. h[4] ..
  ',' .. ARGV[9] .. ',"ep":' .. h[5] .. ',"ec":' .. h[6] .. ',"s":true}'
local sid = add_event(ev)
redis.call('SET', ek(rid), sid, 'EX', RETENTION)
redis.call('HSET', r, 'state', 'committed', 'ev', sid)
settle_keep(rid)
if quiet then return '0' end
local out = {'0'}
push_after(out, keys, after)
return reply(out)
