package redis

// The Lua scripts. Each runs atomically in Redis, which is what makes the
// broker crash-safe: a message is never outside both its list and the
// unacked bookkeeping (see doc.go).

// luaFetch pops up to ARGV[1] messages and records each as unacked, in one
// atomic step.
//
// KEYS: unacked_index, unacked, then the lists bucket-major: for each
// priority step, each queue in the current rotation order.
// ARGV: max count, score (unix time, unique to the fetch), consumer id
// (with the score, it names envelopes without a tag), number of queues, "1" for round robin (share the batch between
// queues) or "0" (drain in order), then the JSON-quoted queue names in the
// rotation order, then delivery tags to acknowledge first (acks ride on
// the next fetch: one script call instead of two).
//
// The unacked hash gets kombu's triple [envelope, "", queue]: exchange ""
// with the queue as routing key, which kombu's restore (and ours) sends
// back to exactly the queue the message was taken from.
//
// It returns the envelopes in delivery order. The delivery tag used as the
// bookkeeping key is found by the rule deliveryTag implements in Go (kombu's
// layout, with the tag last, is recognised from the end of the envelope;
// anything else takes the first match of a pattern); an envelope without
// one is recorded under id..":"..score..":"..position so that the consumer
// can still acknowledge it.
var luaFetch = newScript(`
local n = tonumber(ARGV[1])
local score, nonce = ARGV[2], ARGV[3] .. ':' .. ARGV[2]
local nq = tonumber(ARGV[4])
local rr = ARGV[5] == '1'
local nb = (#KEYS - 2) / nq
local first = 6 + nq
while first <= #ARGV do
  local last = math.min(#ARGV, first + 4000)
  redis.call('ZREM', KEYS[1], unpack(ARGV, first, last))
  redis.call('HDEL', KEYS[2], unpack(ARGV, first, last))
  first = last + 1
end
local out, h, z = {}, {}, {}
local find, sub, max = string.find, string.sub, math.max
-- take pops up to k messages of one list and appends them to into.
local function take(key, k, into)
  local items = redis.call('RPOP', key, k)
  if not items then return 0 end
  for i = 1, #items do into[#into + 1] = items[i] end
  return #items
end
-- record files env (from queue qname) as unacked and in the result.
local function record(env, qname)
  local pos = #out + 1
  local tag
  local a, b = find(env, '"delivery_tag": "', max(1, #env - 80), true)
  if a and sub(env, -3) == '"}}' then
    tag = sub(env, b + 1, -4)
    if tag == '' or find(tag, '["\\]') then tag = nil end
  end
  if not tag then tag = string.match(env, '"delivery_tag"%s*:%s*"([^"\\]*)"') end
  if not tag or tag == '' then tag = nonce .. ':' .. pos end
  out[pos] = env
  h[#h + 1] = tag
  h[#h + 1] = '[' .. env .. ', "", ' .. qname .. ']'
  z[#z + 1] = score
  z[#z + 1] = tag
end
for b = 0, nb - 1 do
  if #out >= n then break end
  if rr then
    -- Share the room between queues and interleave them in the result,
    -- so that a consumer taking part of the batch sees every queue.
    local active, per = {}, {}
    for q = 1, nq do active[q] = q; per[q] = {} end
    local total = #out
    while total < n and #active > 0 do
      local share = math.ceil((n - total) / #active)
      local still = {}
      for _, q in ipairs(active) do
        local k = math.min(share, n - total)
        if k <= 0 then break end
        local t = take(KEYS[2 + b * nq + q], k, per[q])
        total = total + t
        if t == k then still[#still + 1] = q end
      end
      active = still
    end
    local i = 1
    while #out < total do
      for q = 1, nq do
        if per[q][i] then record(per[q][i], ARGV[5 + q]) end
      end
      i = i + 1
    end
  else
    for q = 1, nq do
      if #out >= n then break end
      local list = {}
      take(KEYS[2 + b * nq + q], n - #out, list)
      for _, env in ipairs(list) do record(env, ARGV[5 + q]) end
    end
  end
end
if #out > 0 then
  redis.call('HSET', KEYS[2], unpack(h))
  redis.call('ZADD', KEYS[1], unpack(z))
end
return out
`)

// luaAck forgets delivery tags: ZREM unacked_index + HDEL unacked, as
// kombu's ack does in one MULTI. KEYS: unacked_index, unacked. ARGV: tags.
var luaAck = newScript(`
redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return #ARGV
`)

// luaJSONLib is a small JSON scanner for the scripts: it finds members
// of objects and skips values without decoding (or re-encoding) anything.
const luaJSONLib = `
local byte, sub, find = string.byte, string.sub, string.find

local function ws(s, i) return (find(s, '[^ \t\r\n]', i)) end
local function skipstr(s, i)
  local j = i + 1
  while true do
    local k = find(s, '["\\]', j)
    if not k then return nil end
    if byte(s, k) == 92 then j = k + 2 else return k + 1 end
  end
end
local function skipval(s, i)
  local c = byte(s, i)
  if c == 34 then return skipstr(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local k = find(s, '[%[%]{}"]', j)
      if not k then return nil end
      local b = byte(s, k)
      if b == 34 then
        j = skipstr(s, k)
        if not j then return nil end
      else
        if b == 123 or b == 91 then depth = depth + 1 else depth = depth - 1 end
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  return (find(s, '[,}%] \t\r\n]', i)) or (#s + 1)
end
-- member returns where the value of key name starts in the object whose
-- '{' is at i, or nil.
local function member(s, i, name)
  if not i or byte(s, i) ~= 123 then return nil end
  local j = ws(s, i + 1)
  if not j or byte(s, j) == 125 then return nil end
  while true do
    if byte(s, j) ~= 34 then return nil end
    local e = skipstr(s, j)
    if not e then return nil end
    local key = sub(s, j + 1, e - 2)
    j = ws(s, e)
    if not j or byte(s, j) ~= 58 then return nil end
    j = ws(s, j + 1)
    if not j then return nil end
    if key == name then return j end
    j = skipval(s, j)
    if not j then return nil end
    j = ws(s, j)
    if not j or byte(s, j) ~= 44 then return nil end
    j = ws(s, j + 1)
    if not j then return nil end
  end
end
local function jstr(s, i)
  if not i then return nil end
  if sub(s, i, i + 3) == 'null' then return '', i + 4 end
  if byte(s, i) ~= 34 then return nil end
  local e = skipstr(s, i)
  if not e then return nil end
  local tok = sub(s, i, e - 1)
  if find(tok, '\\', 1, true) then
    local ok, v = pcall(cjson.decode, tok)
    if not ok or type(v) ~= 'string' then return nil end
    return v, e
  end
  return sub(tok, 2, -2), e
end
`

// luaRestoreLib is kombu's restore_by_tag, shared by the restore scripts:
// read the [envelope, exchange, routing_key] triple, forget the tag, mark
// the envelope redelivered (headers.redelivered and
// properties.delivery_info.redelivered, inserted as text so that nothing
// else in the envelope changes), and push it back to the queues the
// exchange and routing key name: RPUSH (front of the line) or LPUSH
// (back, for a reject with requeue).
//
// Scripts using it take KEYS[1] = unacked_index, KEYS[2] = unacked,
// ARGV[1] = global key prefix, ARGV[2] = separator.
const luaRestoreLib = luaJSONLib + `
local index, unacked = KEYS[1], KEYS[2]
local prefix, sep = ARGV[1], ARGV[2]
local function redeliver(env)
  local root = ws(env, 1)
  local ins = {}
  local h = member(env, root, 'headers')
  if h and byte(env, h) == 123 and not member(env, h, 'redelivered') then ins[#ins + 1] = h end
  local p = member(env, root, 'properties')
  if p and byte(env, p) == 123 then
    local d = member(env, p, 'delivery_info')
    if d and byte(env, d) == 123 and not member(env, d, 'redelivered') then ins[#ins + 1] = d end
  end
  table.sort(ins, function(x, y) return x > y end)
  for _, i in ipairs(ins) do
    local j = ws(env, i + 1)
    local text = '"redelivered": true, '
    if j and byte(env, j) == 125 then text = '"redelivered": true' end
    env = sub(env, 1, i) .. text .. sub(env, i + 1)
  end
  return env
end
local function triple(p)
  local i = ws(p, 1)
  if not i or byte(p, i) ~= 91 then return nil end
  local a = ws(p, i + 1)
  if not a or byte(p, a) ~= 123 then return nil end
  local b = skipval(p, a)
  if not b then return nil end
  local j = ws(p, b)
  if not j or byte(p, j) ~= 44 then return nil end
  local ex, rk
  ex, j = jstr(p, ws(p, j + 1))
  if not ex then return nil end
  j = ws(p, j)
  if not j or byte(p, j) ~= 44 then return nil end
  rk, j = jstr(p, ws(p, j + 1))
  if not rk then return nil end
  return sub(p, a, b - 1), ex, rk
end
local function topic(pat, rk)
  local pw, rw = {}, {}
  for w in string.gmatch(pat .. '.', '([^.]*)%.') do pw[#pw + 1] = w end
  for w in string.gmatch(rk .. '.', '([^.]*)%.') do rw[#rw + 1] = w end
  local function m(i, j)
    if i > #pw then return j > #rw end
    if pw[i] == '#' then
      for k = j, #rw + 1 do if m(i + 1, k) then return true end end
      return false
    end
    if j > #rw then return false end
    if pw[i] == '*' or pw[i] == rw[j] then return m(i + 1, j + 1) end
    return false
  end
  return m(1, 1)
end
local function lookup(ex, rk)
  if ex == '' then return {rk} end
  local rows = redis.call('SMEMBERS', prefix .. '_kombu.binding.' .. ex)
  local out, seen, wild = {}, {}, {}
  for _, row in ipairs(rows) do
    local a = find(row, sep, 1, true)
    local b = a and find(row, sep, a + #sep, true)
    if b then
      local brk, q = sub(row, 1, a - 1), sub(row, b + #sep)
      if brk == rk then
        if not seen[q] then seen[q] = true; out[#out + 1] = q end
      elseif find(brk, '[#*]') then
        wild[#wild + 1] = {brk, q}
      end
    end
  end
  if #out == 0 then
    for _, w in ipairs(wild) do
      if not seen[w[2]] and topic(w[1], rk) then seen[w[2]] = true; out[#out + 1] = w[2] end
    end
  end
  if #out == 0 and rk ~= '' then out[1] = rk end
  return out
end
-- restore returns 1 (restored), 0 (tag unknown) or -1 (undecodable, dropped).
local function restore(tag, leftmost, mark)
  local p = redis.call('HGET', unacked, tag)
  redis.call('ZREM', index, tag)
  redis.call('HDEL', unacked, tag)
  if not p then return 0 end
  local env, ex, rk = triple(p)
  if not env then return -1 end
  if mark then env = redeliver(env) end
  for _, q in ipairs(lookup(ex, rk)) do
    if leftmost then redis.call('LPUSH', prefix .. q, env) else redis.call('RPUSH', prefix .. q, env) end
  end
  return 1
end
`

// luaRestore restores the tags ARGV[5...] ("l" in ARGV[3]: LPUSH, for a
// reject with requeue; otherwise RPUSH), flagged redelivered unless
// ARGV[4] is "0" (envelopes fetched ahead but never handed out). Returns
// {restored, dropped}.
var luaRestore = newScript(luaRestoreLib + `
local leftmost = ARGV[3] == 'l'
local mark = ARGV[4] ~= '0'
local r, d = 0, 0
for i = 5, #ARGV do
  local x = restore(ARGV[i], leftmost, mark)
  if x == 1 then r = r + 1 elseif x == -1 then d = d + 1 end
end
return {r, d}
`)

// luaRestoreVisible is kombu's restore_visible: under unacked_mutex
// (KEYS[3], taken with SET NX PX as redis-py's Lock does, so a Python
// worker restoring at the same time makes us skip), restore up to ARGV[4]
// tags whose score is at most ARGV[3] (now - visibility_timeout).
// ARGV[5]: mutex token, ARGV[6]: mutex expiry in ms.
// Returns {found, restored, dropped}, found = -1 when the mutex was held.
//
// It also (re)adds the skiplist sentinel (ARGV[7]) to unacked_index with
// score -1: see skiplistSentinel.
var luaRestoreVisible = newScript(luaRestoreLib + `
redis.call('ZADD', index, -1, ARGV[7])
if not redis.call('SET', KEYS[3], ARGV[5], 'NX', 'PX', ARGV[6]) then return {-1, 0, 0} end
local tags = redis.call('ZREVRANGEBYSCORE', index, ARGV[3], 0, 'LIMIT', 0, ARGV[4])
local r, d = 0, 0
for _, t in ipairs(tags) do
  local x = restore(t, false, true)
  if x == 1 then r = r + 1 elseif x == -1 then d = d + 1 end
end
redis.call('DEL', KEYS[3])
return {#tags, r, d}
`)

// skiplistSentinel is a member kept in unacked_index with score -1. A
// sorted set with a member longer than 64 bytes (zset-max-listpack-value)
// is stored as a skiplist, and stays one while it is not empty; without
// it the index, which holds about a prefetch window of tags, is a listpack
// whose every ZADD and ZREM scans it linearly, which made ZADD the most
// expensive command of a fetch (measured 1-3 µs per member against 0.3 µs).
// Restorers, kombu's and ours, only look at scores from 0 up, so they never
// see it.
const skiplistSentinel = "celerity:keeps-unacked_index-a-skiplist(member>64B,score-1,never-restored)"

// luaPurge empties the lists KEYS (a queue's priority buckets) and returns
// how many messages they held.
var luaPurge = newScript(`
local n = 0
for _, k in ipairs(KEYS) do n = n + redis.call('LLEN', k) end
redis.call('DEL', unpack(KEYS))
return n
`)

// luaStoreResult is Celery's result write (GET; if not SUCCESS: SETEX or
// SET, then PUBLISH on the key) made atomic, so that a stored SUCCESS is
// never replaced even by concurrent writers. KEYS[1]: the record key.
// ARGV: record, expiry in seconds ("0": no expiry). Returns 1 if written.
// SUCCESS is recognised in JSON records (the top-level "status", first as
// Celery writes it or anywhere) and in msgpack records.
var luaStoreResult = newScript(luaJSONLib + `
local cur = redis.call('GET', KEYS[1])
if cur then
  local st
  if string.match(cur, '^%s*{%s*"status"%s*:%s*"SUCCESS"') then
    st = 'SUCCESS'
  else
    st = jstr(cur, member(cur, ws(cur, 1), 'status'))
  end
  if st == 'SUCCESS' or (not st and string.find(cur, '\166status\167SUCCESS', 1, true)) then return 0 end
end
if ARGV[2] ~= '0' then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
`)

// luaChordPart is Celery 5.2's on_chord_part_return bookkeeping (one MULTI
// there): ZADD the part to .j at its group index, ZCOUNT, GET .t and .s,
// EXPIRE all three; when the count reaches .s + .t, also ZRANGE .j.
// Parts count per header task, not per arrival: a report for a group index
// already recorded, or a member already present (a redelivered header task
// run again), adds nothing and never completes the chord, so two reports
// racing at the end cannot both send the body.
// KEYS: .j, .t, .s. ARGV: score ("+inf" without group index), part,
// expiry seconds ("0": none). Returns {0} or {1, parts}.
var luaChordPart = newScript(`
if ARGV[1] ~= '+inf' and #redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1]) > 0 then
  return {0}
end
if redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return {0}
end
local count = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
local t = redis.call('GET', KEYS[2])
local s = redis.call('GET', KEYS[3])
if ARGV[3] ~= '0' then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
if not s then return {0} end
local total = tonumber(s) + (tonumber(t) or 0)
if count ~= total then return {0} end
return {1, redis.call('ZRANGE', KEYS[1], 0, -1)}
`)
