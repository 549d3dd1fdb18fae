"""Lua scripts that decide job state changes inside Redis, one script call per change.

Redis runs a script atomically, so two drains that apply the same event at the
same moment see each other's writes: exactly one of them gets ``applied``.
Every key a script touches is passed in KEYS.

:data:`APPLY_BATCH` applies the events of one SQS batch in one call, with the
same rules as :data:`APPLY_EVENT` applied in the batch's order.

Event markers (``KEYS[2]`` of :data:`APPLY_EVENT`) hold ``done`` once an event
was handled, or ``pending:<token>:<lease expiry ms>`` while its signal is being
fired. A drain that finds an expired lease (the process that took it died
before firing or finishing) takes the lease over and fires the signal again.
"""

#: Lua function shared by APPLY_EVENT and APPLY_BATCH. Its first arguments are
#: the keys: job hash, event marker, open-jobs sorted set and reference set. Then
#: come the event id, status, timestamp ms, now ms, lease expiry ms, ttl s, lease
#: token, job id, reference or "", queue or "" and payload JSON (string values
#: only).
#: Returns {outcome, previous status, new status, note}.
_APPLY_FUNCTION = """
local function apply_event(job_key, event_key, open_key, ref_key, event_id, status, ts_text,
                           now, lease_expiry, ttl, token, job_id, reference, queue,
                           payload_json)
local payload = cjson.decode(payload_json)
local ts = tonumber(ts_text)
local pending = 'pending:' .. token .. ':' .. lease_expiry

local marker = redis.call('GET', event_key)
if marker then
  if marker == 'done' then
    return {'duplicate', '', '', 'event already handled'}
  end
  if string.sub(marker, 1, #token + 9) == 'pending:' .. token .. ':' then
    return {'duplicate', '', '', 'event already in this batch'}
  end
  local expiry = tonumber(string.match(marker, ':(%d+)$'))
  if expiry and expiry > tonumber(now) then
    return {'in_flight', '', '', 'another drain is firing this event'}
  end
  redis.call('SET', event_key, pending, 'EX', ttl)
  local current = redis.call('HGET', job_key, 'status') or ''
  return {'redispatch', current, current, 'the previous dispatch did not finish'}
end

local function finish(outcome, previous, new_status, note)
  if outcome == 'applied' then
    redis.call('SET', event_key, pending, 'EX', ttl)
  else
    redis.call('SET', event_key, 'done', 'EX', ttl)
  end
  return {outcome, previous, new_status, note}
end

local previous = redis.call('HGET', job_key, 'status') or ''
local final = previous == 'COMPLETE' or previous == 'ERROR' or previous == 'CANCELED'
local final_event = status == 'COMPLETE' or status == 'ERROR' or status == 'CANCELED'
local new_status = previous
if new_status == '' then new_status = 'SUBMITTED' end

if final_event then
  if previous == status then
    return finish('duplicate', previous, previous, 'job already ' .. previous)
  end
  if final then
    return finish('stale', previous, previous, 'job already ended as ' .. previous)
  end
  new_status = status
  redis.call('HSET', job_key, 'final_at_ms', now, 'final_event_id', event_id)
  for _, name in ipairs({'outputs', 'error_code', 'error_message', 'warning_counts'}) do
    if payload[name] then redis.call('HSET', job_key, name, payload[name]) end
  end
  redis.call('ZREM', open_key, job_id)
elseif status == 'PROGRESSING' then
  if final then
    return finish('stale', previous, previous, 'job already ended as ' .. previous)
  end
  if redis.call('HEXISTS', job_key, 'progressing_seen') == 1 then
    return finish('duplicate', previous, previous, 'job already progressing')
  end
  new_status = 'PROGRESSING'
  redis.call('HSET', job_key, 'progressing_seen', '1')
elseif status == 'STATUS_UPDATE' then
  if final then
    return finish('stale', previous, previous, 'job already ended as ' .. previous)
  end
  local last = tonumber(redis.call('HGET', job_key, 'progress_ts') or '-1')
  if ts <= last then
    return finish('stale', previous, previous, 'a progress update at least as new was applied')
  end
  new_status = 'PROGRESSING'
  redis.call('HSET', job_key, 'progress_ts', ts_text)
  redis.call('HDEL', job_key, 'percent', 'phase')
  if payload.percent then redis.call('HSET', job_key, 'percent', payload.percent) end
  if payload.phase then redis.call('HSET', job_key, 'phase', payload.phase) end
elseif status == 'INPUT_INFORMATION' then
  redis.call('HSET', job_key, 'input_information', payload.input_information or '[]')
elseif status == 'NEW_WARNING' then
  local warnings = redis.call('HGET', job_key, 'warnings')
  if not warnings or warnings == '[]' then
    warnings = '[' .. payload.warning .. ']'
  else
    warnings = string.sub(warnings, 1, -2) .. ',' .. payload.warning .. ']'
  end
  redis.call('HSET', job_key, 'warnings', warnings)
elseif status ~= 'QUEUE_HOP' then
  return finish('stale', previous, previous, 'unknown status ' .. status)
end

redis.call('HSET', job_key, 'job_id', job_id, 'status', new_status, 'updated_at_ms', now)
redis.call('HSETNX', job_key, 'created_at_ms', now)
local last_ts = tonumber(redis.call('HGET', job_key, 'last_event_ts') or '-1')
if ts > last_ts then redis.call('HSET', job_key, 'last_event_ts', ts_text) end
if queue ~= '' then
  if status == 'QUEUE_HOP' then
    redis.call('HSET', job_key, 'queue', queue)
  else
    redis.call('HSETNX', job_key, 'queue', queue)
  end
end
if payload.user_metadata then
  redis.call('HSETNX', job_key, 'user_metadata', payload.user_metadata)
end
if reference ~= '' then
  redis.call('HSETNX', job_key, 'reference', reference)
  redis.call('SADD', ref_key, job_id)
  redis.call('EXPIRE', ref_key, ttl)
end
if not final_event and not final then
  redis.call('ZADD', open_key, now, job_id)
end
redis.call('EXPIRE', job_key, ttl)
return finish('applied', previous, new_status, '')
end
"""

#: KEYS: job hash, event marker, open-jobs sorted set, reference set.
#: ARGV: event id, status, timestamp ms, now ms, lease expiry ms, ttl s, token,
#: job id, reference or "", queue or "", payload JSON (string values only).
#: Returns {outcome, previous status, new status, note}.
APPLY_EVENT = _APPLY_FUNCTION + """
return apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                   ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
"""

#: Applies the events of one SQS batch in order and takes the signal lock of
#: each job whose ordered signal (progress or final) has to fire.
#: KEYS: open-jobs sorted set, then 4 per event: job hash, event marker, reference
#: set, the job's signal lock.
#: ARGV: now ms, lease expiry ms, ttl s, token (lease and lock), lock ms, then 8 per
#: event: event id, status, timestamp ms, job id, reference or "", queue or "",
#: payload JSON, "1" when the event's signal is ordered.
#: An event whose change raises an error gets the outcome "error", with the
#: error text as its note, and the other events are applied.
#: Returns one line per event, joined by newlines. Each line has the
#: tab-separated outcome, previous status, new status, lock, final and note.
#: Lock is "held" (this token has the job's lock), "busy" (another token has it)
#: or "" (not needed). Final is "1" when the job's status is final. One string parses
#: faster on the client than nested arrays. No field contains a tab or a newline:
#: statuses are the known ones and notes are fixed texts.
APPLY_BATCH = _APPLY_FUNCTION + """
local now, lease_expiry, ttl, token, lock_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local results = {}
for i = 1, (#KEYS - 1) / 4 do
  local k = 1 + (i - 1) * 4
  local a = 5 + (i - 1) * 8
  local job_key, lock_key = KEYS[k + 1], KEYS[k + 4]
  local ok, result = pcall(apply_event, job_key, KEYS[k + 2], KEYS[1], KEYS[k + 3],
                           ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], now, lease_expiry, ttl,
                           token, ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
  if not ok then
    -- One failing event (for example a payload cjson cannot decode) must not
    -- stop the events after it, whose changes would be half written otherwise.
    result = {'error', '', '', (string.gsub(tostring(result), '[\\t\\n]', ' '))}
  end
  local lock = ''
  if (result[1] == 'applied' or result[1] == 'redispatch') and ARGV[a + 8] == '1' then
    local holder = redis.call('GET', lock_key)
    if holder == token then
      lock = 'held'
    elseif not holder then
      redis.call('SET', lock_key, token, 'PX', lock_ms)
      lock = 'held'
    else
      lock = 'busy'
    end
  end
  local current = redis.call('HGET', job_key, 'status') or ''
  local final = '0'
  if current == 'COMPLETE' or current == 'ERROR' or current == 'CANCELED' then final = '1' end
  results[i] = table.concat({result[1], result[2], result[3], lock, final, result[4]}, '\\t')
end
return table.concat(results, '\\n')
"""

#: KEYS: job hash, open-jobs sorted set, reference set, and optionally a key that
#: is set to ARGV[9] with the job's TTL in the same call (a submission's final record).
#: ARGV: job id, now ms, ttl s, reference or "", queue or "", user metadata JSON or "",
#: submission id or "", "1" to return the job hash's fields or "0" for the status only,
#: the value for KEYS[4]. Returns the job's status after the call, or with ARGV[8] "1"
#: the job hash as HGETALL returns it.
RECORD_SUBMITTED = """
local job_key, open_key, ref_key = KEYS[1], KEYS[2], KEYS[3]
local job_id, now, ttl = ARGV[1], ARGV[2], ARGV[3]
local reference, queue, metadata, submission = ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[9], 'EX', ttl)
end
local optional = {queue = queue, user_metadata = metadata, submission_id = submission,
                  reference = reference}
local status = 'SUBMITTED'
if redis.call('EXISTS', job_key) == 0 then
  -- A new job: one HSET writes every field.
  local fields = {'job_id', job_id, 'status', status, 'created_at_ms', now,
                  'updated_at_ms', now, 'submitted_at_ms', now}
  for name, value in pairs(optional) do
    if value ~= '' then
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
  end
  redis.call('HSET', job_key, unpack(fields))
else
  redis.call('HSETNX', job_key, 'job_id', job_id)
  redis.call('HSETNX', job_key, 'status', status)
  redis.call('HSETNX', job_key, 'created_at_ms', now)
  redis.call('HSETNX', job_key, 'updated_at_ms', now)
  redis.call('HSET', job_key, 'submitted_at_ms', now)
  for name, value in pairs(optional) do
    if value ~= '' then redis.call('HSETNX', job_key, name, value) end
  end
  status = redis.call('HGET', job_key, 'status')
end
if reference ~= '' then
  redis.call('SADD', ref_key, job_id)
  redis.call('EXPIRE', ref_key, ttl)
end
if status ~= 'COMPLETE' and status ~= 'ERROR' and status ~= 'CANCELED' then
  redis.call('ZADD', open_key, 'NX', now, job_id)
end
redis.call('EXPIRE', job_key, ttl)
if ARGV[8] == '1' then
  return redis.call('HGETALL', job_key)
end
return status
"""


#: KEYS: signal lock, event marker, job hash. ARGV: lock token ("" when the lock
#: was not taken), marker TTL in seconds, receiver error text ("" for none), "1" to
#: mark the event done or "0" to only release the lock. Releases the lock only
#: while it holds the token.
END_SIGNAL = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
if ARGV[4] == '0' then
  return 0
end
redis.call('SET', KEYS[2], 'done', 'EX', tonumber(ARGV[2]))
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[3], 'receiver_errors', 1)
  redis.call('HSET', KEYS[3], 'last_receiver_error', ARGV[3])
end
return 1
"""
