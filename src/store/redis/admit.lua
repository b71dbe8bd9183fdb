-- tollgate admission, batched: one call admits N requests in order, on one
-- clock (Redis TIME, read once), each all or nothing. Admitting them one by
-- one at the same instant gives the same answers.
-- ARGV[1]  tests only, '' in production: the time in microseconds since the
--          epoch, instead of Redis TIME (the parity table fixes the clock)
-- Then, for the i-th admission (i = 0..N-1), KEYS[3i+1..3i+3] and
-- ARGV[7i+2..7i+8]:
--   KEYS  the token bucket (GCRA theoretical arrival time, in microseconds);
--         the owner's credit balance (hash: bal, win); a short-lived token's
--         remaining requests (absent: revoked or expired). All three share the
--         owner's hash tag: one Cluster slot (a batch never spans two).
--   ARGV  emission interval in microseconds; burst (bucket capacity); 1 if
--         credits are charged, else 0; credit cost; credit budget; refill
--         period in ms (0: prepaid, never refilled); 1 if the request counts
--         against a short-lived token's limit
-- Returns one reply per admission:
--   {code, remaining, retry_after_us, reset_after_us, balance, refill_in_ms, token_left}
-- code: 1 admitted, 0 rate limited, 2 insufficient credits, 3 token limit used
-- up, 4 token revoked. A refused request changes nothing. An admission whose
-- keys hold the wrong type answers {-1, message} and does not stop the others.
-- Each key is read once per call and written once at its end (the same final
-- values as one call per admission): a busy bucket admitted ten times in a
-- batch costs one GET and one SET, not ten of each.
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local now_ms = math.floor(now / 1000)

-- Key -> state, read on first use: buckets {tat, dirty}, balances
-- {bal, win, dirty}, tokens {left, used}.
local buckets, balances, tokens = {}, {}, {}
local function state(cache, key, read)
  local s = cache[key]
  if s == nil then
    s = read(key)
    cache[key] = s
  end
  return s
end
local function read_bucket(key)
  return {tat = tonumber(redis.call('GET', key)), dirty = false}
end
local function read_balance(key)
  local st = redis.call('HMGET', key, 'bal', 'win')
  return {bal = tonumber(st[1]), win = tonumber(st[2]), dirty = false}
end
local function read_token(key)
  return {left = tonumber(redis.call('GET', key)), used = 0}
end

local function admit(bucket_key, credits_key, token_key, a)
  local interval = tonumber(ARGV[a])
  local burst = tonumber(ARGV[a + 1])
  local capacity = interval * burst

  local limited = ARGV[a + 6] == '1'
  local token, token_left = nil, -1
  if limited then
    token = state(tokens, token_key, read_token)
    if token.left == nil then
      return {4, 0, 0, 0, -1, -1, -1}
    end
    token_left = token.left
  end

  local bucket = state(buckets, bucket_key, read_bucket)
  local tat = bucket.tat or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - capacity

  local charged = ARGV[a + 2] == '1'
  local credits, balance, win, refill_in = nil, -1, 0, -1
  if charged then
    local period = tonumber(ARGV[a + 5])
    credits = state(balances, credits_key, read_balance)
    balance = credits.bal
    win = credits.win or 0
    if period > 0 then
      local current = math.floor(now_ms / period)
      if balance == nil or win ~= current then
        balance = tonumber(ARGV[a + 4])
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

  local cost = tonumber(ARGV[a + 3])
  if charged and balance < cost then
    return {2, remaining, 0, tat - now, balance, refill_in, token_left}
  end
  if limited and token_left <= 0 then
    return {3, remaining, 0, tat - now, balance, refill_in, 0}
  end

  if charged then
    balance = balance - cost
    credits.bal, credits.win, credits.dirty = balance, win, true
  end
  if limited then
    token.left, token.used = token.left - 1, token.used + 1
    token_left = token.left
  end
  bucket.tat, bucket.dirty = new_tat, true
  return {1, remaining, 0, new_tat - now, balance, refill_in, token_left}
end

local replies = {}
for i = 0, #KEYS / 3 - 1 do
  local ok, reply = pcall(admit, KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3], 7 * i + 2)
  if ok then
    replies[i + 1] = reply
  else
    local message = reply
    if type(reply) == 'table' then message = reply.err or 'error' end
    replies[i + 1] = {-1, tostring(message)}
  end
end

-- The final state of every key an admission changed.
for key, b in pairs(buckets) do
  if b.dirty then
    -- The bucket key lives exactly as long as the bucket is not full.
    redis.call('SET', key, string.format('%.0f', b.tat), 'PX', math.ceil((b.tat - now) / 1000) + 1)
  end
end
for key, c in pairs(balances) do
  if c.dirty then
    redis.call('HSET', key, 'bal', c.bal, 'win', c.win)
  end
end
for key, t in pairs(tokens) do
  if t.used > 0 then
    redis.call('DECRBY', key, t.used)
  end
end
return replies
