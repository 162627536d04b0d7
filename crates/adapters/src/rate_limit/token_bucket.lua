-- One GCRA rate-limit check, atomically (see crates/domain/src/rate_limit.rs for the arithmetic).
--
-- KEYS[1]  the bucket, e.g. "dashtam:rl:{login-ip:203.0.113.7}" (hash-tagged: one slot on Redis Cluster)
-- ARGV[1]  microseconds per token (the refill interval)
-- ARGV[2]  burst: how many tokens a full bucket holds
--
-- Returns {admitted (1|0), remaining, microseconds until the bucket is full, microseconds until a refused
-- request could be admitted (0 when admitted)}.
--
-- The clock is Redis's own (TIME), so every instance sharing this Redis judges by one clock. Times are whole
-- microseconds since the Unix epoch (about 1.8e15), well inside the 2^53 a Lua double holds exactly.

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local capacity = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end

local new_tat = tat + interval
local allow_at = new_tat - capacity
if now < allow_at then
    return {0, 0, tat - now, allow_at - now}
end

-- The key lives exactly as long as the bucket is not full: an expired key and a full bucket are the same.
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((capacity - (new_tat - now)) / interval), new_tat - now, 0}
