"""The Redis side of the shared circuit breakers: Lua scripts, atomic, on Redis's own clock (``TIME``).

Keys (``P`` is ``state.key_prefix``, ``D`` a deployment id):

- ``P cb:D`` hash: ``st`` ("o" when open; absent: closed), ``ou`` (open until, ms), ``pl`` / ``pt``
  (the half-open probe's lease: until when, ms, and its holder's token), ``cf`` (consecutive
  failures), and the window's buckets ``e<i>`` (bucket number), ``r<i>`` (requests), ``f<i>``
  (failures) for i in 0..9 — the layout of ``gateway.resilience.breaker.Window``. Its TTL is renewed
  on every write and outlives window + cooldown + lease, so a deployment nobody uses leaves nothing.
- ``P cb:D:force`` string "open" | "closed": an operator's forced state (``POST
  /admin/deployments/D/circuit``), until "auto" deletes it; expires after ``FORCE_TTL_SECONDS``.

Times returned are Redis milliseconds; each reply starts with Redis's ``now`` so a replica can map
them onto its own monotonic clock.
"""

from __future__ import annotations

FORCE_TTL_SECONDS = 7 * 24 * 3600

_PRELUDE = """
local NB = 10
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function bucket_fields()
  local f = {}
  for s = 0, NB - 1 do
    f[#f + 1] = 'e' .. s
    f[#f + 1] = 'r' .. s
    f[#f + 1] = 'f' .. s
  end
  return f
end
local function totals(vals, offset, idx)
  local r, f = 0, 0
  for s = 0, NB - 1 do
    local e = tonumber(vals[offset + s * 3 + 1] or '-1')
    if e > idx - NB then
      r = r + tonumber(vals[offset + s * 3 + 2] or '0')
      f = f + tonumber(vals[offset + s * 3 + 3] or '0')
    end
  end
  return r, f
end
"""

# KEYS: one breaker hash per deployment. ARGV, 10 per key: ok, failed, trailing, had_success(0/1),
# failure_threshold, failure_rate, min_requests, window_ms, cooldown_ms, ttl_ms.
# Returns {now, st_1, ou_1, st_2, ou_2, ...}: "o" / "c" after this batch.
RECORD = _PRELUDE + """
local out = {now}
local fields = bucket_fields()
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 10
  local ok, failed, trailing = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local had_success = ARGV[a + 4] == '1'
  local threshold, rate, min_requests = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  local window, cooldown, ttl = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9]), tonumber(ARGV[a + 10])
  local head = redis.call('HMGET', key, 'st', 'ou', 'cf')
  local st, ou = head[1], tonumber(head[2] or '0')
  if st ~= 'o' then
    local width = math.max(1, math.floor(window / NB))
    local idx = math.floor(now / width)
    local slot = idx % NB
    local vals = redis.call('HMGET', key, unpack(fields))
    local cf = tonumber(head[3] or '0')
    if had_success then cf = trailing else cf = cf + failed end
    local r, f = 0, 0
    if tonumber(vals[slot * 3 + 1] or '-1') == idx then
      r, f = tonumber(vals[slot * 3 + 2] or '0'), tonumber(vals[slot * 3 + 3] or '0')
    end
    r, f = r + ok + failed, f + failed
    vals[slot * 3 + 1], vals[slot * 3 + 2], vals[slot * 3 + 3] = tostring(idx), tostring(r), tostring(f)
    local requests, failures = totals(vals, 0, idx)
    if cf >= threshold or (requests >= min_requests and failures > 0 and failures >= rate * requests) then
      st, ou = 'o', now + cooldown
      redis.call('DEL', key)
      redis.call('HSET', key, 'st', 'o', 'ou', ou)
    else
      st = 'c'
      redis.call('HSET', key, 'cf', cf, 'e' .. slot, idx, 'r' .. slot, r, 'f' .. slot, f)
    end
    redis.call('PEXPIRE', key, ttl)
  end
  out[#out + 1] = st
  out[#out + 1] = ou
end
return out
"""

# KEYS: hash_1, force_1, hash_2, force_2, ... ARGV: window_ms per deployment.
# Returns {now, then per deployment: st, ou, pl, forced, requests, failures}.
SNAPSHOT = _PRELUDE + """
local out = {now}
local fields = bucket_fields()
for i = 1, #KEYS, 2 do
  local window = tonumber(ARGV[(i + 1) / 2])
  local width = math.max(1, math.floor(window / NB))
  local idx = math.floor(now / width)
  local vals = redis.call('HMGET', KEYS[i], 'st', 'ou', 'pl', unpack(fields))
  local requests, failures = totals(vals, 3, idx)
  out[#out + 1] = vals[1] or 'c'
  out[#out + 1] = tonumber(vals[2] or '0')
  out[#out + 1] = tonumber(vals[3] or '0')
  out[#out + 1] = redis.call('GET', KEYS[i + 1]) or ''
  out[#out + 1] = requests
  out[#out + 1] = failures
end
return out
"""

# KEYS: hash, force. ARGV: lease_ms, token, ttl_ms.
# Returns {now, verdict, until}: verdict "probe" (this caller holds the lease until `until`),
# "busy" (another probe holds it until `until`), "open" (cooling down until `until`), "closed",
# or "forced:open" / "forced:closed".
ACQUIRE_PROBE = _PRELUDE + """
local forced = redis.call('GET', KEYS[2])
if forced then return {now, 'forced:' .. forced, 0} end
local head = redis.call('HMGET', KEYS[1], 'st', 'ou', 'pl')
if head[1] ~= 'o' then return {now, 'closed', 0} end
local ou, pl = tonumber(head[2] or '0'), tonumber(head[3] or '0')
if now < ou then return {now, 'open', ou} end
if now < pl then return {now, 'busy', pl} end
local lease = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'pl', lease, 'pt', ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[3]), tonumber(ARGV[1]) + 1000))
return {now, 'probe', lease}
"""

# KEYS: hash. ARGV: token, verdict ("1" success, "0" failure, "" release undecided), cooldown_ms, ttl_ms.
# Returns {now, st, ou}. A verdict from a lease that is no longer held (it expired and another
# probe took it) changes nothing.
PROBE_RESULT = _PRELUDE + """
local head = redis.call('HMGET', KEYS[1], 'st', 'ou', 'pt')
if head[1] ~= 'o' or head[3] ~= ARGV[1] then
  return {now, head[1] or 'c', tonumber(head[2] or '0')}
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
  return {now, 'c', 0}
end
if ARGV[2] == '0' then
  local ou = now + tonumber(ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'st', 'o', 'ou', ou)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
  return {now, 'o', ou}
end
redis.call('HDEL', KEYS[1], 'pl', 'pt')
return {now, 'o', tonumber(head[2] or '0')}
"""

# KEYS: hash. ARGV: open_for_ms, ttl_ms. Opens a closed circuit (a replica's verdict reached while
# Redis was down, handed over when it returns). Returns {now, st, ou}.
TRIP = _PRELUDE + """
local head = redis.call('HMGET', KEYS[1], 'st', 'ou')
if head[1] == 'o' then return {now, 'o', tonumber(head[2] or '0')} end
local ou = now + tonumber(ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'st', 'o', 'ou', ou)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return {now, 'o', ou}
"""
