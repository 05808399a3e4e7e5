-- Booking storm (phase `booking`, path `booking_storm`): every request is one citizen trying to book one slot of the
-- storm matter, with an Idempotency-Key of its own. bench.py puts these globals in front of this file:
--   bench_data    a Lua file returning {matter, salt, wave, per_wave, tokens = {...}, days = {{slot id, ...}, ...}}
--   bench_state   the next free attempt number, kept across the phase's wrk runs (written by done())
--   bench_report  this run's report for bench.py (written by done())
--   bench_threads wrk -t
--
-- Attempts are numbered over the whole phase (thread t of T sends base+t, base+t+T, ...). Attempt i belongs to wave
-- w = i // wave: waves go through the days in turn (day w % #days), and round r = w // #days of the days uses the
-- next `wave` citizens and the next `per_wave` slots of that day. So every citizen tries every day at most once (no
-- BOOKING_EXISTS), the connections storm a few slots at a time, and each wave has more citizens than seats: it sees
-- 201s first and 409 SLOT_FULL once its slots are full. response() counts statuses and error codes, the booking id
-- of every 201 and, per slot, the 201s and SLOT_FULLs; done() writes them to bench_report.

local data = dofile(bench_data)
local C, D, B, S = #data.tokens, #data.days, data.wave, data.per_wave
local R = math.floor(C / B) -- rounds of the days before citizens would repeat
local threads = {}

local function read_number(path)
  local f = io.open(path, "r")
  if not f then return 0 end
  local n = tonumber(f:read("*l") or "") or 0
  f:close()
  return n
end

function setup(thread)
  if #threads == 0 then first = read_number(bench_state) end
  thread:set("tid", #threads)
  thread:set("base", first)
  table.insert(threads, thread)
end

function init(args)
  sent, wrapped = 0, 0
  counts, ids, slot_ok, slot_full = {}, {}, {}, {}
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  local i = base + tid + sent * bench_threads
  sent = sent + 1
  local j, w = i % B, math.floor(i / B)
  local r = math.floor(w / D)
  if r >= R then wrapped = wrapped + 1 end -- more attempts than citizen-days: citizens start to repeat
  r = r % R
  local slot = data.days[(w % D) + 1][r * S + (j % S) + 1]
  headers["Authorization"] = "Bearer " .. data.tokens[r * B + j + 1]
  headers["Idempotency-Key"] = data.salt .. "-" .. i
  return wrk.format("POST", nil, headers, '{"matter_code":"' .. data.matter .. '","slot_id":"' .. slot .. '"}')
end

local function bump(t, k, n)
  t[k] = (t[k] or 0) + (n or 1)
end

function response(status, hdrs, body)
  bump(counts, "status_" .. status)
  if status == 201 then
    ids[#ids + 1] = body:match('"id":"([%x%-]+)"') or "?"
    bump(slot_ok, body:match('"slot_id":"([^"]+)"') or "?")
  elseif status >= 400 then
    local code = body:match('"code":"([%w_]+)"') or "none"
    bump(counts, "code_" .. code)
    if code == "SLOT_FULL" then bump(slot_full, body:match('"slot_id":"([^"]+)"') or "?") end
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(bench_report, "w"))
  local total, ok, full, most = { wrapped = 0 }, {}, {}, 0
  for _, t in ipairs(threads) do
    local n = t:get("sent")
    if n > most then most = n end
    bump(total, "sent", n)
    bump(total, "wrapped", t:get("wrapped"))
    for k, v in pairs(t:get("counts")) do bump(total, k, v) end
    for k, v in pairs(t:get("slot_ok")) do bump(ok, k, v) end
    for k, v in pairs(t:get("slot_full")) do bump(full, k, v) end
    for _, id in ipairs(t:get("ids")) do out:write("id ", id, "\n") end
  end
  for k, v in pairs(total) do out:write("count ", k, " ", v, "\n") end
  for k, v in pairs(ok) do out:write("slot_ok ", k, " ", v, "\n") end
  for k, v in pairs(full) do out:write("slot_full ", k, " ", v, "\n") end
  out:close()
  local state = assert(io.open(bench_state, "w"))
  state:write(first + most * bench_threads, "\n")
  state:close()
end
