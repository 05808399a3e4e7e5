-- Online applications (phase `cases`, path `case_submit`): every request is one citizen applying online for the bench
-- matter (no required material), with an Idempotency-Key of its own, so every answer should be 201 and a new case.
-- bench.py puts these globals in front of this file:
--   bench_data    a Lua file returning {salt, tokens = {...}, ids = {...}, head, mid, tail}: the citizens' tokens, an
--                 ID number for each, and the application's JSON cut where its ID number and its form's n go
--   bench_state   the next free request number, kept across the phase's wrk runs (written by done())
--   bench_report  this run's report for bench.py (written by done())
--   bench_threads wrk -t
--
-- Requests are numbered over the whole phase (thread t of T sends base+t, base+t+T, ...); request i is sent by citizen
-- i % #tokens with the key salt-i and the form's n = i. response() counts statuses and error codes and the case number
-- of every 201; done() writes them to bench_report.

local data = dofile(bench_data)
local N = #data.tokens
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
  sent = 0
  counts, cases = {}, {}
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  local i = base + tid + sent * bench_threads
  sent = sent + 1
  local c = (i % N) + 1
  headers["Authorization"] = "Bearer " .. data.tokens[c]
  headers["Idempotency-Key"] = data.salt .. "-" .. i
  return wrk.format("POST", nil, headers, data.head .. data.ids[c] .. data.mid .. i .. data.tail)
end

local function bump(t, k, n)
  t[k] = (t[k] or 0) + (n or 1)
end

function response(status, hdrs, body)
  bump(counts, "status_" .. status)
  if status == 201 then
    cases[#cases + 1] = body:match('"case_no":"(%w+)"') or "?"
  elseif status >= 400 then
    bump(counts, "code_" .. (body:match('"code":"([%w_]+)"') or "none"))
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(bench_report, "w"))
  local total, most = {}, 0
  for _, t in ipairs(threads) do
    local n = t:get("sent")
    if n > most then most = n end
    bump(total, "sent", n)
    for k, v in pairs(t:get("counts")) do bump(total, k, v) end
    for _, no in ipairs(t:get("cases")) do out:write("case ", no, "\n") end
  end
  for k, v in pairs(total) do out:write("count ", k, " ", v, "\n") end
  out:close()
  local state = assert(io.open(bench_state, "w"))
  state:write(first + most * bench_threads, "\n")
  state:close()
end
