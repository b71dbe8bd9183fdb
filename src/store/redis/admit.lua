-- tollgate admission: one call, one clock (Redis TIME), all or nothing.
-- KEYS[1]  the token bucket (GCRA theoretical arrival time, in microseconds)
-- KEYS[2]  the owner's credit balance (hash: bal, win)
-- KEYS[3]  a short-lived token's remaining requests (absent: revoked or expired)
--          All three share the owner's hash tag: one Cluster slot.
-- ARGV[1]  emission interval in microseconds
-- ARGV[2]  burst (bucket capacity)
-- ARGV[3]  1 if credits are charged, else 0
-- ARGV[4]  credit cost
-- ARGV[5]  credit budget
-- ARGV[6]  refill period in ms (0: prepaid, never refilled)
-- ARGV[7]  1 if the request counts against a short-lived token's limit
-- ARGV[8]  tests only, absent in production: the time in microseconds since
--          the epoch, instead of Redis TIME (the parity table fixes the clock)
-- Returns {code, remaining, retry_after_us, reset_after_us, balance, refill_in_ms, token_left}
-- code: 1 admitted, 0 rate limited, 2 insufficient credits, 3 token limit used
-- up, 4 token revoked. A refused request changes nothing.
local now = tonumber(ARGV[8])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local now_ms = math.floor(now / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local capacity = interval * burst

local limited = ARGV[7] == '1'
local token_left = -1
if limited then
  token_left = tonumber(redis.call('GET', KEYS[3]))
  if token_left == nil then
    return {4, 0, 0, 0, -1, -1, -1}
  end
end

local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - capacity

local charged = ARGV[3] == '1'
local balance, win, refill_in = -1, 0, -1
if charged then
  local period = tonumber(ARGV[6])
  local st = redis.call('HMGET', KEYS[2], 'bal', 'win')
  balance = tonumber(st[1])
  win = tonumber(st[2]) or 0
  if period > 0 then
    local current = math.floor(now_ms / period)
    if balance == nil or win ~= current then
      balance = tonumber(ARGV[5])
      win = current
    end
    refill_in = (current + 1) * period - now_ms
  elseif balance == nil then
    balance = 0
  end
end

if now < allow_at then
  local remaining = math.floor((now - (tat - capacity)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, allow_at - now, tat - now, balance, refill_in, token_left}
end
local remaining = math.floor((now - allow_at) / interval)
if remaining > burst then remaining = burst end

if charged and balance < tonumber(ARGV[4]) then
  return {2, remaining, 0, tat - now, balance, refill_in, token_left}
end
if limited and token_left <= 0 then
  return {3, remaining, 0, tat - now, balance, refill_in, 0}
end

if charged then
  balance = balance - tonumber(ARGV[4])
  redis.call('HSET', KEYS[2], 'bal', balance, 'win', win)
end
if limited then
  token_left = redis.call('DECR', KEYS[3])
end
-- The bucket key lives exactly as long as the bucket is not full.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, remaining, 0, new_tat - now, balance, refill_in, token_left}
