-- tollgate: read or change a credit balance with the same refill rule as admit.lua.
-- KEYS[1]  the owner's credit balance (hash: bal, win)
-- ARGV[1]  delta to add (0 to read)
-- ARGV[2]  budget, ARGV[3] refill period in ms (0: prepaid)
-- ARGV[4]  the largest balance allowed either way (MAX_CREDITS): Lua numbers
--          are doubles, exact only up to 2^53
-- ARGV[5]  tests only, absent in production: the time in milliseconds since
--          the epoch, instead of Redis TIME (the parity table fixes the clock)
-- Returns {1, new balance}, or {0, balance} when the change would leave
-- -ARGV[4]..ARGV[4] (nothing is written).
local now_ms = tonumber(ARGV[5])
if now_ms == nil then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local period = tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'bal', 'win')
local balance = tonumber(st[1])
local win = tonumber(st[2]) or 0
if period > 0 then
  local current = math.floor(now_ms / period)
  if balance == nil or win ~= current then
    balance = tonumber(ARGV[2])
    win = current
  end
elseif balance == nil then
  balance = 0
end
local delta = tonumber(ARGV[1])
local max = tonumber(ARGV[4])
if delta ~= 0 then
  local after = balance + delta
  if after > max or after < -max then
    return {0, balance}
  end
  balance = after
  redis.call('HSET', KEYS[1], 'bal', balance, 'win', win)
end
return {1, balance}
