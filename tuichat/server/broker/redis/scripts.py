"""The Lua scripts that number, de-duplicate, store and publish, each in one atomic step."""

from __future__ import annotations

POST = """
local seq_key, log_key, id_key, epoch_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local texts, state, reactions = KEYS[6], KEYS[7], KEYS[8]
local room, sender, sender_key, text = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ts, action, client_id, token = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local maxlen, ttl, new_epoch = ARGV[9], ARGV[10], ARGV[11]
local verb, target, on = ARGV[12], ARGV[13], ARGV[14]
local epoch = redis.call('GET', epoch_key)
if not epoch then
  epoch = new_epoch
end
redis.call('SET', epoch_key, epoch)  -- kept now that the room has a message
if client_id ~= '' then
  local earlier = redis.call('GET', id_key)
  if earlier then
    local cut = string.find(earlier, ':', 1, true)
    return {0, tonumber(string.sub(earlier, 1, cut - 1)), tonumber(string.sub(earlier, cut + 1)),
            tonumber(epoch)}
  end
end
local seq = redis.call('INCR', seq_key)
local fields = {'s', sender, 'k', sender_key, 'ts', ts, 'a', action, 'i', client_id, 'o', token}
if verb ~= '' then
  table.insert(fields, 'v'); table.insert(fields, verb)
  table.insert(fields, 'n'); table.insert(fields, on)
end
if target ~= '0' then
  table.insert(fields, 'g'); table.insert(fields, target)
end
redis.call('XADD', log_key, 'MAXLEN', '~', maxlen, seq .. '-0', unpack(fields))
redis.call('HSET', texts, seq, text)
local gone = seq - tonumber(maxlen) - TRIM_SLACK
if gone > 0 then  -- trimmed from the stream by now: its text and state go too
  redis.call('HDEL', texts, gone)
  redis.call('HDEL', state, gone, 'e' .. gone)
  redis.call('HDEL', reactions, gone)
end
local deleted = verb ~= '' and redis.call('HGET', state, target) == 'd'
if deleted and verb == 'edit' then  -- made as its message was deleted: its text goes too
  redis.call('HSET', texts, seq, '')
end
if verb ~= '' and not deleted then
  if verb == 'react' then
    local given = redis.call('HGET', reactions, target)
    local list = given and cmsgpack.unpack(given) or {}
    local kept = {}
    for _, r in ipairs(list) do
      if not (r[1] == text and r[2] == sender_key) then table.insert(kept, r) end
    end
    if on == '1' then table.insert(kept, {text, sender_key, sender}) end
    if #kept == 0 then
      redis.call('HDEL', reactions, target)
    else
      redis.call('HSET', reactions, target, cmsgpack.pack(kept))
    end
  elseif verb == 'edit' then
    redis.call('HSET', texts, target, text)
    redis.call('HSET', state, target, 'e')
    local edits = redis.call('HGET', state, 'e' .. target)
    redis.call('HSET', state, 'e' .. target, (edits and (edits .. ',') or '') .. seq)
  elseif verb == 'delete' then  -- its text and its edits' texts are gone from Redis
    redis.call('HSET', texts, target, '')
    redis.call('HSET', state, target, 'd')
    redis.call('HDEL', reactions, target)
    local edits = redis.call('HGET', state, 'e' .. target)
    if edits then
      for edit in string.gmatch(edits, '[^,]+') do redis.call('HSET', texts, edit, '') end
      redis.call('HDEL', state, 'e' .. target)
    end
  end
end
if client_id ~= '' then
  redis.call('SET', id_key, seq .. ':' .. ts, 'EX', ttl)
end
local event = {room, seq, sender, text, tonumber(ts), action, token, tonumber(epoch)}
if verb ~= '' or target ~= '0' then
  table.insert(event, verb); table.insert(event, tonumber(target)); table.insert(event, on)
end
redis.call('SPUBLISH', channel, cmsgpack.pack(event))
return {1, seq, tonumber(ts), tonumber(epoch)}
""".replace("TRIM_SLACK", "1000")
"""Number, de-duplicate, store and publish one room message or verb (a lost epoch is made anew).

The text goes to the room's `texts` hash (by seq), not the stream, so that a delete can take
it out of Redis (a stream entry cannot be changed); the message a verb is about changes there
too: its `state` (`e` edited, `d` deleted, and `e<seq>` its edits' seqs), its reactions
(`[text, key, name]` in the order given, msgpack). A text is dropped with its entry, about
`TRIM_SLACK` entries after the stream's length passes `maxlen` (trimmed in whole blocks)."""

EPOCH = """
local epoch = redis.call('GET', KEYS[1])
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
if not epoch then
  epoch = ARGV[1]
  if seq == 0 then  -- a room nobody wrote in yet: forgotten in a day unless someone does
    redis.call('SET', KEYS[1], epoch, 'EX', 86400)
  else
    redis.call('SET', KEYS[1], epoch)
  end
end
return {tonumber(epoch), seq}
"""
"""A room's epoch (made if it has none; it expires while the room has no message) and its last
seq."""

PRIVATE = """
local pid_key, to_log, from_log, id_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local between = KEYS[6]
local sender, sender_key, target, target_key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local text, ts, action, client_id, maxlen, ttl, floor =
  ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local origin, hidden = ARGV[12], ARGV[13] == '1'
if client_id ~= '' then
  local earlier = redis.call('GET', id_key)
  if earlier then
    return {0, earlier}
  end
end
if target_key == '' then
  return {2}
end
local pid = redis.call('INCR', pid_key)
if pid <= floor then  -- the counter was lost with Redis's data: never give out a pid twice
  pid = floor + 1
  redis.call('SET', pid_key, pid)
end
local fields = {'f', sender, 'fk', sender_key, 'to', target, 'tk', target_key, 't', text,
  'ts', ts, 'a', action, 'i', client_id}
if hidden then  -- for the sender only: not in the target's stream, marked in their conversation
  table.insert(fields, 'h')
  table.insert(fields, '1')
else
  redis.call('XADD', to_log, 'MAXLEN', '~', maxlen, pid .. '-0', unpack(fields))
end
if hidden or from_log ~= to_log then
  redis.call('XADD', from_log, 'MAXLEN', '~', maxlen, pid .. '-0', unpack(fields))
end
redis.call('XADD', between, 'MAXLEN', '~', maxlen, pid .. '-0', unpack(fields))
if client_id ~= '' then
  redis.call('SET', id_key, cmsgpack.pack({pid, tonumber(ts), target, text, action}), 'EX', ttl)
end
if hidden then
  target_key = ''  -- every server hands it to the sender's sessions only
end
redis.call('SPUBLISH', channel,
  cmsgpack.pack({pid, sender, sender_key, target, target_key, text, tonumber(ts), action, origin}))
return {1, pid, tonumber(ts)}
"""
"""Number, de-duplicate, store (for both parties, and in their conversation) and publish one
private message (with the server it came from).

A hidden one (ARGV 13 is `1`: the target ignores the sender) is stored for the sender only, in
their stream and in the conversation (with `h` set), and published with no target key.

A retry gets `{0, original}` (its pid, ts, target, text and action, packed); a new message to
nobody (`target_key` empty) `{2}`; a new message `{1, pid, ts}`."""

READ = """
local reads, order, channel = KEYS[1], KEYS[2], KEYS[3]
local origin, user_key, conversation, label = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local epoch, seq, now, keep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
  tonumber(ARGV[8])
local stored = redis.call('HGET', reads, conversation)
local moved, changed = true, true
if stored then
  local was = cmsgpack.unpack(stored)  -- {label, epoch, seq, moved at}
  if was[2] == epoch and was[3] >= seq then
    moved, changed, seq, now = false, was[1] ~= label, was[3], was[4]
  end
end
if moved then  -- the user's newest: later than all of theirs, even within one millisecond
  local newest = redis.call('ZREVRANGE', order, 0, 0, 'WITHSCORES')[2]
  if newest and tonumber(newest) >= now then
    now = tonumber(newest) + 1
  end
  redis.call('ZADD', order, now, conversation)
end
if changed then
  redis.call('HSET', reads, conversation, cmsgpack.pack({label, epoch, seq, now}))
  redis.call('SPUBLISH', channel,
    cmsgpack.pack({origin, user_key, conversation, label, epoch, seq}))
end
local extra = redis.call('ZCARD', order) - keep
if extra > 0 then
  redis.call('HDEL', reads, unpack(redis.call('ZRANGE', order, 0, extra - 1)))
  redis.call('ZREMRANGEBYRANK', order, 0, extra - 1)
end
return {label, epoch, seq}
"""
"""Store a user's read marker unless it is behind the stored one of its epoch (the label is
always the newest), keep their `keep` most recently moved, and publish it if it changed; answer
the marker as stored: `{label, epoch, seq}`."""

CLAIM = """
local owner, old, bare = ARGV[1], ARGV[2], ARGV[3]
local function key(value) return (string.match(value, '^[^#]*')) end
for i = 4, #ARGV do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and key(current) ~= key(owner)
      and (old == '' or (current ~= old and current ~= bare)) then
    return 0
  end
end
for i = 4, #ARGV do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or key(current) ~= key(owner) then  -- (the same owner keeps its first mark)
    redis.call('HSET', KEYS[1], ARGV[i], owner)
  end
end
return 1
"""
"""Register a name's keys to an owner unless another owner has one of them (ARGV: the owner,
the owner it may replace and that owner's version-1 form, or two empty strings; the keys).
Owners are compared without their registration mark (`#` and what follows)."""

CLAIM_ROOM = """
local keys, unkeyed, room, key = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local holder = redis.call('HGET', keys, key)
if holder == room then
  return {room, 1, 0}
end
if redis.call('SISMEMBER', unkeyed, room) == 1 then
  if holder then
    return {room, 0, 0}
  end
  redis.call('SREM', unkeyed, room)
  redis.call('HSET', keys, key, room)
  return {room, 1, 0}
end
if holder then
  return {holder, 1, 0}
end
redis.call('HSET', keys, key, room)
return {room, 1, 1}
"""
"""The room a join of a room name means (ARGV: the name and its comparison key): the name if it
holds the key, or is a room of its own whose look-alike has it (`{room, 0}`); else the key's
holder; else the name, which holds the key from now on: a new room. Answers `{room, keyed,
new}`."""

MODERATE = """
local rules, version_key, log, log_id, channel, id_key, room_log =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local floor, payload, logged, maxlen, ttl, event_id, room_maxlen =
  tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[14]
if event_id ~= '' then
  local earlier = redis.call('GET', id_key)
  if earlier then  -- sent again after a lost answer: stored already
    local was = cmsgpack.unpack(earlier)
    return {was[1], was[2], 0}
  end
end
local function last(stream)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  return newest and tonumber(string.match(newest[1], '^%d+')) or 0
end
local entry = 0
if logged == '1' then
  entry = redis.call('INCR', log_id)
  local stored = math.max(last(log), last(room_log))
  if stored >= entry then  -- the counter was lost: never number an entry twice
    entry = stored + 1
    redis.call('SET', log_id, entry)
  end
  local fields = {'ts', ARGV[7], 'room', ARGV[8], 'action', ARGV[9], 'name', ARGV[10],
    'by', ARGV[11], 'reason', ARGV[12], 'until', ARGV[13]}
  redis.call('XADD', log, 'MAXLEN', '~', maxlen, entry .. '-0', unpack(fields))
  redis.call('XADD', room_log, 'MAXLEN', '~', room_maxlen, entry .. '-0', unpack(fields))
end
for i = 15, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', rules, ARGV[i])
  else
    redis.call('HSET', rules, ARGV[i], ARGV[i + 1])
  end
end
local version = redis.call('INCR', version_key)
if version <= floor then  -- the counter was lost with Redis's data: it never goes back
  version = floor + 1
  redis.call('SET', version_key, version)
end
if event_id ~= '' then
  redis.call('SET', id_key, cmsgpack.pack({version, entry}), 'EX', ttl)
end
redis.call('SPUBLISH', channel, version .. ':' .. payload)
return {version, entry, 1}
"""
"""Store one moderation step and publish it, in one atomic step: its rules (ARGV from 15 on,
pairs of a rule's field and its value, `''` to remove it), its entry in the moderation log if
it is `logged` (ARGV 7-13: ts, room, action, name, by, reason, until; numbered by a counter),
in the whole log's stream (KEYS[3], bounded to `maxlen`) and in its room's (KEYS[7], under the
same id, bounded to ARGV 14), and its publication (`<version>:<payload>`).

Answers `{version, entry (0: none), new}`: a step sent again (its id remembered for `ttl`
seconds) is not stored twice, and gets the first answer with `new` 0."""

RULES = """
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
"""
"""Every rule stored and the version of the last moderation step (KEYS: the rules, the
counter), as of one moment: `{version, {field, value, ...}}`."""
