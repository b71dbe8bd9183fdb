-- tollgate: add a key to an account, refusing when the account already holds
-- ARGV[1] active keys (0: no cap). Atomic with the insert.
-- KEYS[1]  the account's key records hash {id -> {"rec":..., "exp": ms|null, "rev": ms|null}}
-- ARGV[2]  key id, ARGV[3] the record (JSON)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
if max > 0 then
  local active = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
    local r = cjson.decode(v)
    local revoked = r.rev ~= nil and r.rev ~= cjson.null
    local expired = r.exp ~= nil and r.exp ~= cjson.null and r.exp <= now
    if not revoked and not expired then active = active + 1 end
  end
  if active >= max then return -1 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
