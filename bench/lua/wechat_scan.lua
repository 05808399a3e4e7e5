-- WeChat scans (phase `wechat`, path `wechat_scan`): every request is one SCAN event of the picked matter's default QR
-- code, posted to /wechat/callback in safe mode (encrypt_type=aes) by a subscriber of its own, signed with a nonce of
-- its own. The callback refuses a reused nonce and answers a repeated event (same sender, time, event and key) with
-- its first answer without counting it again, so no message may be sent twice: bench.py generates them all in the
-- setup (wechatpy's WeChatCrypto) and this script sends each once. bench.py puts these globals in front of this file:
--   bench_data    the prefix of one Lua file per wrk thread, `<bench_data>.<tid>.lua`, returning
--                 {n, path_len, encrypt_len, head, tail, blob}: blob holds the thread's n messages as records of
--                 fixed width, each the callback's path with its signed query (path_len bytes) followed by the
--                 message's Encrypt value (encrypt_len bytes); a message is POST path with the body
--                 head .. encrypt .. tail
--   bench_state   the messages each wrk thread has sent so far, kept across the phase's wrk runs (written by done())
--   bench_report  this run's report for bench.py (written by done())
--   bench_threads wrk -t (the same in every run of a phase)
--
-- Thread t sends the messages of its own file in order, each once, and continues where the previous run stopped
-- (a message wrk sent but saw no answer to is skipped too: the server may have taken its nonce). When a thread has
-- sent them all it starts over (`wrapped`: the server refuses those, bench.py reports it). response() counts
-- statuses, error codes and whether a 200 is an encrypted reply (result_encrypted: the body holds <Encrypt>),
-- WeChat's `success` (result_success: no reply) or anything else (result_other); the first encrypted reply of each
-- thread is kept (whitespace removed) for bench.py to decrypt; done() writes all that to bench_report.

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
  if #threads == 0 then before = read_counts(bench_state) end
  local tid = #threads
  thread:set("tid", tid)
  thread:set("start", before[tid] or 0)
  table.insert(threads, thread)
end

function init(args)
  sent, wrapped = 0, 0
  counts = {}
  local data = dofile(bench_data .. "." .. tid .. ".lua") -- only this thread's messages
  head, tail, blob, n = data.head, data.tail, data.blob, data.n
  path_len, width = data.path_len, data.path_len + data.encrypt_len
  headers = { ["Content-Type"] = "text/xml" }
end

function request()
  local j = start + sent -- this thread's message number over the phase
  sent = sent + 1
  if j >= n then wrapped = wrapped + 1 end -- out of fresh messages: a reused nonce (refused)
  local at = (j % n) * width
  local path = blob:sub(at + 1, at + path_len)
  return wrk.format("POST", path, headers, head .. blob:sub(at + path_len + 1, at + width) .. tail)
end

local function bump(t, k, n)
  t[k] = (t[k] or 0) + (n or 1)
end

function response(status, hdrs, body)
  bump(counts, "status_" .. status)
  if status == 200 then
    if body:find("<Encrypt>", 1, true) then
      bump(counts, "result_encrypted")
      if sample == nil then sample = (body:gsub("%s", "")) end
    elseif body == "success" then
      bump(counts, "result_success")
    else
      bump(counts, "result_other")
    end
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
    local reply = t:get("sample")
    if reply then out:write("reply ", reply, "\n") end
  end
  for k, v in pairs(total) do out:write("count ", k, " ", v, "\n") end
  state:close()
  out:close()
end
