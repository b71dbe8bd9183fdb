-- tollgate admission: one call, one clock (Redis TIME), all or nothing.
-- KEYS[1]  the token bucket (GCRA theoretical arrival time, in microseconds)
-- ARGV[1]  emission interval in microseconds
-- ARGV[2]  burst (bucket capacity)
-- Returns {allowed (0/1), remaining, retry_after_us, reset_after_us}.
-- A denied request changes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local capacity = interval * burst

local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - capacity

if now < allow_at then
  local remaining = math.floor((now - (tat - capacity)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, allow_at - now, tat - now}
end

local remaining = math.floor((now - allow_at) / interval)
if remaining > burst then remaining = burst end
-- The key lives exactly as long as the bucket is not full.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, remaining, 0, new_tat - now}
