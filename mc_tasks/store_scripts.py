"""Lua scripts that decide job state changes inside Redis, one script call per change.

Redis runs a script atomically, so two drains that apply the same event at the
same moment see each other's writes: exactly one of them gets ``applied``.
Every key a script touches is passed in KEYS.

Event markers (``KEYS[2]`` of :data:`APPLY_EVENT`) hold ``done`` once an event
was handled, or ``pending:<token>:<lease expiry ms>`` while its signal is being
fired. A drain that finds an expired lease (the process that took it died
before firing or finishing) takes the lease over and fires the signal again.
"""

#: KEYS: job hash, event marker, open-jobs sorted set, reference set.
#: ARGV: event id, status, timestamp ms, now ms, lease expiry ms, ttl s, token,
#: job id, reference or "", queue or "", payload JSON (string values only).
#: Returns {outcome, previous status, new status, note}.
APPLY_EVENT = """
local job_key, event_key, open_key, ref_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local event_id, status, ts_text, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lease_expiry, ttl, token = ARGV[5], ARGV[6], ARGV[7]
local job_id, reference, queue = ARGV[8], ARGV[9], ARGV[10]
local payload = cjson.decode(ARGV[11])
local ts = tonumber(ts_text)
local pending = 'pending:' .. token .. ':' .. lease_expiry

local marker = redis.call('GET', event_key)
if marker then
  if marker == 'done' then
    return {'duplicate', '', '', 'event already handled'}
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
"""

#: KEYS: job hash, open-jobs sorted set, reference set.
#: ARGV: job id, now ms, ttl s, reference or "", queue or "", user metadata JSON or "",
#: submission id or "". Returns the job's status after the call.
RECORD_SUBMITTED = """
local job_key, open_key, ref_key = KEYS[1], KEYS[2], KEYS[3]
local job_id, now, ttl = ARGV[1], ARGV[2], ARGV[3]
local reference, queue, metadata, submission = ARGV[4], ARGV[5], ARGV[6], ARGV[7]

redis.call('HSETNX', job_key, 'job_id', job_id)
redis.call('HSETNX', job_key, 'status', 'SUBMITTED')
redis.call('HSETNX', job_key, 'created_at_ms', now)
redis.call('HSETNX', job_key, 'updated_at_ms', now)
redis.call('HSET', job_key, 'submitted_at_ms', now)
if queue ~= '' then redis.call('HSETNX', job_key, 'queue', queue) end
if metadata ~= '' then redis.call('HSETNX', job_key, 'user_metadata', metadata) end
if submission ~= '' then redis.call('HSETNX', job_key, 'submission_id', submission) end
if reference ~= '' then
  redis.call('HSETNX', job_key, 'reference', reference)
  redis.call('SADD', ref_key, job_id)
  redis.call('EXPIRE', ref_key, ttl)
end
local status = redis.call('HGET', job_key, 'status')
if status ~= 'COMPLETE' and status ~= 'ERROR' and status ~= 'CANCELED' then
  redis.call('ZADD', open_key, 'NX', now, job_id)
end
redis.call('EXPIRE', job_key, ttl)
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
