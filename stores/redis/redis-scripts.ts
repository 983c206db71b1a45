/**
 * The store's server-side Lua scripts. Each takes the view version's meta hash as KEYS[1]; its fields:
 *
 * | field | holds |
 * |---|---|
 * | `gen` | the generation: a truncate starts a new one, so it never has to delete keys in the hot path |
 * | `trunc` | order of the last truncate (commit and change position, 32 hex digits); rows at or before it are ignored |
 * | `n` | entities with values in the current generation (for `count`) |
 * | `swept` | generation below which no keys are left (old ones are deleted in the background) |
 * | `wm` | the watermark (16 hex digits) |
 * | `wm:<part>` | the position of one part of the view's stream (a Kafka partition), see `ffMark` |
 * | `epoch` | the load marker: set when a load finished; a server restarted empty or flushed has none |
 * | `loading` | token of a load under way, so a load the server lost midway is not marked finished |
 *
 * An entity's value is at `<prefix>:<view>@<version>:<gen>:<entityId>`: its bytes are laid out in
 * redis-codec.ts. Positions are compared as fixed-width hex strings: Lua numbers are doubles, and a
 * 64-bit position would lose its low bits (hex digits sort the same bytewise and in any collation).
 */

/** Script name → Lua source, for ioredis's `defineCommand` (EVALSHA, EVAL when the server lacks it). */
export const SCRIPTS = {
  /**
   * Applies rows. ARGV[1]: the entity key prefix `<prefix>:<view>@<version>:`; ARGV[2]: the rows, a
   * MessagePack array `[entityId, entry, …]` (redis-codec.ts), an entityId '' being a truncate at the
   * entry's order. An entry starts with its order (commit position, then change position, 32 hex
   * digits: string order is commit order); a row is applied when its order is past the last
   * truncate's and past the entity's stored one (a tombstone's too). Returns {rows applied, generation, swept generation}.
   */
  ffApply: `
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'gen', 'trunc', 'n', 'swept')
local gen = tonumber(m[1]) or 0
local trunc = m[2] or ''
local n = tonumber(m[3]) or 0
local rows = cmsgpack.unpack(ARGV[2])
local applied = 0

-- Applies rows[from..to) (no truncate among them) with one MGET and MSETs: a call from Lua costs
-- more than the command itself, so a GET and a SET per row would double the script's time.
local function apply(from, to)
  if to <= from then return end
  local base = ARGV[1] .. gen .. ':'
  local keys = {}
  for i = from, to - 1, 2 do keys[#keys + 1] = base .. rows[i] end
  local stored = {}
  for i = 1, #keys, 1000 do
    local part = redis.call('MGET', unpack(keys, i, math.min(i + 999, #keys)))
    for j = 1, #part do stored[i + j - 1] = part[j] end
  end
  -- The newest entry per key so far, for an entity with several rows in this call.
  local latest = {}
  local sets = {}
  for j = 1, #keys do
    local key, entry = keys[j], rows[from + 2 * j - 1]
    local order = string.sub(entry, 1, 32)
    local current = latest[key] or stored[j]
    if order > trunc and (not current or order > string.sub(current, 1, 32)) then
      -- 40 bytes: a tombstone (order and commit time); longer: values.
      if current and #current > 40 then n = n - 1 end
      if #entry > 40 then n = n + 1 end
      latest[key] = entry
      sets[#sets + 1] = key
      sets[#sets + 1] = entry
      applied = applied + 1
    end
  end
  for i = 1, #sets, 2000 do redis.call('MSET', unpack(sets, i, math.min(i + 1999, #sets))) end
end

local from = 1
for i = 1, #rows, 2 do
  if rows[i] == '' then
    apply(from, i)
    from = i + 2
    local order = string.sub(rows[i + 1], 1, 32)
    if order > trunc then
      gen = gen + 1
      trunc = order
      n = 0
      applied = applied + 1
    end
  end
end
apply(from, #rows + 1)
redis.call('HSET', meta, 'gen', gen, 'trunc', trunc, 'n', n)
return {applied, gen, tonumber(m[4]) or 0}
`,
  /** Reads entries. ARGV[1]: the entity key prefix; ARGV[2…]: entity ids. Returns their entries, nil where none. */
  ffRead: `
local gen = redis.call('HGET', KEYS[1], 'gen') or '0'
local base = ARGV[1] .. gen .. ':'
local out = {}
for i = 2, #ARGV do out[i - 1] = redis.call('GET', base .. ARGV[i]) end
return out
`,
  /**
   * Whether a load finished (needsLoad). ARGV[1]: a token for the load the caller makes when there is
   * none and no other load is under way; processes that load at once share the first one's token (each
   * load writes the same rows, and whichever finishes first marks the load done). Returns {load epoch or
   * '' when none, generation, swept generation, the token of the load under way or ''}.
   */
  ffCheck: `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'gen', 'swept', 'loading')
local loading = m[4]
if not m[1] and not loading then
  loading = ARGV[1]
  redis.call('HSET', KEYS[1], 'loading', loading)
end
return {m[1] or '', tonumber(m[2]) or 0, tonumber(m[3]) or 0, m[1] and '' or loading}
`,
  /**
   * Moves the watermark forward (setWatermark). ARGV[1]: the position; ARGV[2]: the epoch this process
   * knows ('' none); ARGV[3]: the token of the load it started ('' none); ARGV[4]: a new epoch;
   * ARGV[5], ARGV[6]: the part of the view's stream the position covers and the number of parts ('' ''
   * for the whole view). A part's position is kept in field `wm:<part>`, and the watermark moves to the
   * lowest of them once every part has one. With no epoch on the server, the call finishes a load,
   * unless the server lost what this process wrote (it knew an epoch, or its load token is gone).
   * Returns the epoch in force, '' when lost.
   */
  ffMark: `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'wm', 'loading')
local epoch = m[1]
if not epoch then
  if ARGV[2] ~= '' or (ARGV[3] ~= '' and m[3] ~= ARGV[3]) then return '' end
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('HDEL', KEYS[1], 'loading')
end
local through = ARGV[1]
if ARGV[5] ~= '' then
  local field = 'wm:' .. ARGV[5]
  local known = redis.call('HGET', KEYS[1], field)
  if not known or ARGV[1] > known then redis.call('HSET', KEYS[1], field, ARGV[1]) end
  for i = 0, tonumber(ARGV[6]) - 1 do
    local at = redis.call('HGET', KEYS[1], 'wm:' .. i)
    if not at then through = nil break end
    if at < through then through = at end
  end
end
if through and (not m[2] or through > m[2]) then redis.call('HSET', KEYS[1], 'wm', through) end
return epoch
`,
  /**
   * Deletes keys of generations before the current one. ARGV[1]: the entity key prefix; ARGV[2…]: keys
   * SCAN found under it. Checked here, atomically: a server restarted empty counts generations from 0
   * again, and those keys are live. Returns the number deleted.
   */
  ffSweep: `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0
local old = {}
for i = 2, #ARGV do
  local g = tonumber(string.match(ARGV[i], '^(%d+):', #ARGV[1] + 1))
  if g and g < gen then old[#old + 1] = ARGV[i] end
end
local deleted = 0
for i = 1, #old, 500 do deleted = deleted + redis.call('UNLINK', unpack(old, i, math.min(i + 499, #old))) end
return deleted
`,
  /** Records that no keys below generation ARGV[1] are left (unless the server restarted empty meanwhile). */
  ffSwept: `
local m = redis.call('HMGET', KEYS[1], 'gen', 'swept')
local target = tonumber(ARGV[1])
if (tonumber(m[1]) or 0) >= target and (tonumber(m[2]) or 0) < target then
  redis.call('HSET', KEYS[1], 'swept', ARGV[1])
end
return 0
`,
} as const;
