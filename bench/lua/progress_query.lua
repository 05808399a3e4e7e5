-- Anonymous progress queries (phase `cases`, path `progress_query`): every request asks for the progress of one of the
-- cases applied for in the setup, by its case number and query code. bench.py puts these globals in front of this
-- file:
--   bench_data    a Lua file returning {paths = {"/api/v1/progress?case_no=..&query_code=..", ...}, cases = {...}}
--   bench_report  this run's report for bench.py (written by done())
--   bench_threads wrk -t
--
-- Thread t of T queries the cases t, t+T, t+2T, ... in turn, round and round. response() counts statuses, error codes
-- and whether a 200 names one of the cases queried (result_case) or not (result_other); done() writes the counts to
-- bench_report.

local data = dofile(bench_data)
local N = #data.paths
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  counts, known = {}, {}
  for _, no in ipairs(data.cases) do known[no] = true end
  headers = { ["Accept"] = "application/json" }
end

function request()
  local i = tid + sent * bench_threads
  sent = sent + 1
  return wrk.format("GET", data.paths[(i % N) + 1], headers)
end

local function bump(t, k, n)
  t[k] = (t[k] or 0) + (n or 1)
end

function response(status, hdrs, body)
  bump(counts, "status_" .. status)
  if status == 200 then
    local no = body:match('"case_no":"(%w+)"')
    bump(counts, (no and known[no]) and "result_case" or "result_other")
  elseif status >= 400 then
    bump(counts, "code_" .. (body:match('"code":"([%w_]+)"') or "none"))
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(bench_report, "w"))
  local total = {}
  for _, t in ipairs(threads) do
    bump(total, "sent", t:get("sent"))
    for k, v in pairs(t:get("counts")) do bump(total, k, v) end
  end
  for k, v in pairs(total) do out:write("count ", k, " ", v, "\n") end
  out:close()
end
