-- Desk check-ins (phase `booking`, paths `desk_checkin` and `desk_rescan`): every request is one scan of a booking's
-- ticket by a clerk of the hall, with a nonce of its own. bench.py puts these globals in front of this file:
--   bench_data      a Lua file returning {token, counter, salt, tickets = {...}} (tickets of bookings starting soon)
--   bench_state     this path's scans so far per wrk thread, kept across the phase's wrk runs (written by done())
--   bench_rescan_of (desk_rescan only) the bench_state of desk_checkin
--   bench_report    this run's report for bench.py (written by done())
--   bench_threads   wrk -t (the same in every run of a phase)
--
-- The tickets are split into one region per wrk thread. desk_checkin's thread t scans the tickets of region t in
-- order, each once: first check-ins (only when the phase scans more than a region holds does it wrap around and scan
-- tickets a second time; bench.py reports that). desk_rescan's thread t cycles through the tickets desk_checkin's
-- thread t has scanned so far: scans of bookings already checked in. response() counts statuses and results, and the
-- booking id of every `checked_in` answer; done() writes them to bench_report.

local data = dofile(bench_data)
local region = math.max(1, math.floor(#data.tickets / bench_threads))
local threads = {}

local function read_counts(path) -- "tid count" lines
  local out = {}
  local f = path and io.open(path, "r")
  if not f then return out end
  for line in f:lines() do
    local t, n = line:match("^(%d+) (%d+)$")
    if t then out[tonumber(t)] = tonumber(n) end
  end
  f:close()
  return out
end

function setup(thread)
  if #threads == 0 then
    before = read_counts(bench_state)
    checked = read_counts(bench_rescan_of)
  end
  local tid = #threads
  thread:set("tid", tid)
  thread:set("start", before[tid] or 0)
  -- desk_rescan cycles through the part of the region desk_checkin has scanned (the whole region when it has wrapped)
  thread:set("span", bench_rescan_of and math.max(1, math.min(region, checked[tid] or 0)) or region)
  table.insert(threads, thread)
end

function init(args)
  sent, wrapped = 0, 0
  counts, checked_in = {}, {}
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. data.token }
  prefix = '{"counter":"' .. data.counter .. '","nonce":"' .. data.salt .. (bench_rescan_of and "r" or "c") .. tid .. "-"
end

function request()
  local j = start + sent -- this thread's scan number over the phase
  sent = sent + 1
  if j >= span and not bench_rescan_of then wrapped = wrapped + 1 end -- desk_checkin ran out of tickets
  local ticket = data.tickets[tid * region + (j % span) + 1]
  return wrk.format("POST", nil, headers, prefix .. j .. '","ticket":"' .. ticket .. '"}')
end

local function bump(t, k, n)
  t[k] = (t[k] or 0) + (n or 1)
end

function response(status, hdrs, body)
  bump(counts, "status_" .. status)
  if status == 200 then
    local result = body:match('"result":"([%w_]+)"') or "none"
    bump(counts, "result_" .. result)
    if result == "checked_in" then checked_in[#checked_in + 1] = body:match('"booking":{"id":"([%x%-]+)"') or "?" end
  elseif status >= 400 then
    bump(counts, "code_" .. (body:match('"code":"([%w_]+)"') or "none"))
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(bench_report, "w"))
  local state = assert(io.open(bench_state, "w"))
  local total = { wrapped = 0 }
  for _, t in ipairs(threads) do
    local tid, n = t:get("tid"), t:get("sent")
    state:write(tid, " ", t:get("start") + n, "\n")
    bump(total, "sent", n)
    bump(total, "wrapped", t:get("wrapped"))
    for k, v in pairs(t:get("counts")) do bump(total, k, v) end
    for _, id in ipairs(t:get("checked_in")) do out:write("checked_in ", id, "\n") end
  end
  for k, v in pairs(total) do out:write("count ", k, " ", v, "\n") end
  state:close()
  out:close()
end
