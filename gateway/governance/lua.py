"""The Redis half of the limits: two Lua scripts, run atomically, timed by Redis's own clock.

Per scope, four keys: ``r`` (sorted set of admitted requests, scored by ms), ``t`` (sorted set of
token reservations), ``h`` (hash: reservation -> tokens) and ``n`` (the tokens in the window). The
rules are those of ``windows.LocalWindows``, line for line.

ADMIT   KEYS: per scope r, t, h, n; then one counter per budget
        ARGV: scope count, window ms, member, then per scope rpm, tpm, reservation; then per budget limit
        returns {admitted, now_ms, budget index (0: none), per scope {count, total, oldest request ms,
                 oldest token ms, refused ('', 'rpm', 'tpm'), retry ms}}
PEEK    KEYS and ARGV as ADMIT (reservations and budgets unused): the windows as they are, charging nothing
        returns {now_ms, per scope {count, total, oldest request ms, oldest token ms, '', 0}}
SETTLE  KEYS: one counter per budget; then per scope t, h, n
        ARGV: budget count, cost nanos, member, actual tokens, window ms, then per budget ttl seconds
        returns the budget counters after the charge
"""

ADMIT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local member = ARGV[3]
local cutoff = now - window
local PAGE = 500

local function evict_tokens(zt, ht, nt)
  while true do
    local old = redis.call('ZRANGEBYSCORE', zt, '-inf', cutoff, 'LIMIT', 0, PAGE)
    if #old == 0 then return end
    local vals = redis.call('HMGET', ht, unpack(old))
    local freed = 0
    for k = 1, #vals do freed = freed + (tonumber(vals[k]) or 0) end
    redis.call('HDEL', ht, unpack(old))
    redis.call('ZREM', zt, unpack(old))
    if freed ~= 0 then redis.call('DECRBY', nt, freed) end
  end
end

local function token_retry(zt, ht, need)
  local freed, start = 0, 0
  while true do
    local page = redis.call('ZRANGE', zt, start, start + PAGE - 1, 'WITHSCORES')
    if #page == 0 then return window end
    local ids = {}
    for k = 1, #page, 2 do ids[#ids + 1] = page[k] end
    local vals = redis.call('HMGET', ht, unpack(ids))
    for k = 1, #ids do
      freed = freed + (tonumber(vals[k]) or 0)
      if freed >= need then return tonumber(page[2 * k]) + window - now end
    end
    start = start + PAGE
  end
end

local function oldest(z)
  local e = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #e == 0 then return 0 end
  return tonumber(e[2])
end

local admitted = 1
local budget_index = 0
local nb = #KEYS - 4 * n
for b = 1, nb do
  local spent = tonumber(redis.call('GET', KEYS[4 * n + b]) or '0')
  if spent >= tonumber(ARGV[3 + 3 * n + b]) then
    admitted = 0
    budget_index = b
    break
  end
end

local states = {}
for i = 1, n do
  local zr, zt, ht, nt = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local rpm, tpm, reserve = tonumber(ARGV[1 + 3 * i]), tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  local count, total, refused, retry = 0, 0, '', 0
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', zr, '-inf', cutoff)
    count = redis.call('ZCARD', zr)
    if count >= rpm then
      local e = redis.call('ZRANGE', zr, count - rpm, count - rpm, 'WITHSCORES')
      refused = 'rpm'
      retry = tonumber(e[2]) + window - now
    end
  end
  if tpm > 0 then
    evict_tokens(zt, ht, nt)
    total = tonumber(redis.call('GET', nt) or '0')
    if total + reserve > tpm then
      local wait = token_retry(zt, ht, total + reserve - tpm)
      if wait > retry then retry = wait end
      if refused == '' then refused = 'tpm' end
    end
  end
  if refused ~= '' then admitted = 0 end
  states[i] = {count, total, 0, 0, refused, retry}
end

local ttl = window + 1000
for i = 1, n do
  local zr, zt, ht, nt = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local rpm, tpm, reserve = tonumber(ARGV[1 + 3 * i]), tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  local s = states[i]
  if admitted == 1 then
    if rpm > 0 then
      redis.call('ZADD', zr, now, member)
      redis.call('PEXPIRE', zr, ttl)
      s[1] = s[1] + 1
    end
    if tpm > 0 then
      redis.call('ZADD', zt, now, member)
      redis.call('HSET', ht, member, reserve)
      redis.call('INCRBY', nt, reserve)
      redis.call('PEXPIRE', zt, ttl)
      redis.call('PEXPIRE', ht, ttl)
      redis.call('PEXPIRE', nt, ttl)
      s[2] = s[2] + reserve
    end
  end
  if rpm > 0 then s[3] = oldest(zr) end
  if tpm > 0 then s[4] = oldest(zt) end
end
return {admitted, now, budget_index, states}
"""

SETTLE = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local member = ARGV[3]
local actual = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local out = {}
for b = 1, nb do
  if cost > 0 then
    out[b] = redis.call('INCRBY', KEYS[b], ARGV[2])
    redis.call('EXPIRE', KEYS[b], ARGV[5 + b])
  else
    out[b] = tonumber(redis.call('GET', KEYS[b]) or '0')
  end
end
local ns = (#KEYS - nb) / 3
for j = 1, ns do
  local zt, ht, nt = KEYS[nb + 3 * j - 2], KEYS[nb + 3 * j - 1], KEYS[nb + 3 * j]
  local old = redis.call('HGET', ht, member)
  local score = redis.call('ZSCORE', zt, member)
  local live = old and score and tonumber(score) > now - window
  if live then
    local d = actual - tonumber(old)
    if d ~= 0 then
      redis.call('HSET', ht, member, actual)
      redis.call('INCRBY', nt, d)
    end
  elseif old then  -- still logged, but already out of the window
    redis.call('ZREM', zt, member)
    redis.call('HDEL', ht, member)
    redis.call('DECRBY', nt, old)
  end
  if actual > 0 and not live then  -- the reservation left the window (a long stream): charge it now
    local late = member .. '+'
    redis.call('ZADD', zt, now, late)
    redis.call('HSET', ht, late, actual)
    redis.call('INCRBY', nt, actual)
    redis.call('PEXPIRE', zt, window + 1000)
    redis.call('PEXPIRE', ht, window + 1000)
    redis.call('PEXPIRE', nt, window + 1000)
  end
end
return out
"""

# the same clock, eviction and helpers as ADMIT, then a read of every scope's window
PEEK = ADMIT.split("local admitted = 1\n", 1)[0] + r"""
local states = {}
for i = 1, n do
  local zr, zt, ht, nt = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  redis.call('ZREMRANGEBYSCORE', zr, '-inf', cutoff)
  evict_tokens(zt, ht, nt)
  states[i] = {redis.call('ZCARD', zr), tonumber(redis.call('GET', nt) or '0'), oldest(zr), oldest(zt), '', 0}
end
return {now, states}
"""
