-- wrk script for the JobOps benchmark.
--
-- BENCH_REQUESTS names a tab-separated file, one request per line: THREAD METHOD PATH TOKEN [IF-NONE-MATCH]
-- (THREAD is a 0-based wrk thread index, or * for every thread; the optional fifth column is sent as If-None-Match,
-- for the polling scenario). Each thread cycles through its own lines in
-- order, so a read endpoint can rotate over many ids and the write mix can hand each thread disjoint jobs (their
-- start/complete steps interleaved, so the steps of one job are never in flight together).
-- BENCH_HOST is the Host header (the same one the equality check used). done() prints one JSON line, prefixed
-- with BENCH_JSON, with the counts and the latency percentiles in microseconds. BENCH_BODY, when set, is the JSON
-- body of every request that is not a GET (the login scenario's credentials); otherwise such a body is empty.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local position = 0
wrapped = 0  -- global: done() reads it back with thread:get

function init(args)
   local host = os.getenv("BENCH_HOST")
   local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
   for line in file:lines() do
      local thread, method, path, token, etag = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]*)\t?([^\t]*)$")
      if thread and (thread == "*" or tonumber(thread) == thread_index) then
         local headers = { ["Host"] = host, ["Accept"] = "application/json" }
         if token ~= "" then
            headers["Authorization"] = "Bearer " .. token
         end
         if etag and etag ~= "" then
            headers["If-None-Match"] = etag
         end
         local body = nil
         if method ~= "GET" then
            headers["Content-Type"] = "application/json"
            body = os.getenv("BENCH_BODY") or ""
         end
         table.insert(requests, wrk.format(method, path, headers, body))
      end
   end
   file:close()
   assert(#requests > 0, "no requests for thread " .. tostring(thread_index))
end

function request()
   position = position + 1
   if position > #requests then
      position = 1
      wrapped = wrapped + 1
   end
   return requests[position]
end

function done(summary, latency, requests_stats)
   local wraps = 0
   for _, thread in ipairs(threads) do
      wraps = wraps + (thread:get("wrapped") or 0)
   end
   local parts = {
      string.format('"requests": %d', summary.requests),
      string.format('"duration_us": %d', summary.duration),
      string.format('"bytes": %d', summary.bytes),
      string.format('"errors_connect": %d', summary.errors.connect),
      string.format('"errors_read": %d', summary.errors.read),
      string.format('"errors_write": %d', summary.errors.write),
      string.format('"errors_timeout": %d', summary.errors.timeout),
      string.format('"non_2xx_3xx": %d', summary.errors.status),
      string.format('"wrapped": %d', wraps),
      string.format('"latency_mean_us": %.1f', latency.mean),
      string.format('"latency_max_us": %d', latency.max),
      string.format('"p50_us": %d', latency:percentile(50)),
      string.format('"p90_us": %d', latency:percentile(90)),
      string.format('"p99_us": %d', latency:percentile(99)),
   }
   io.write("BENCH_JSON {" .. table.concat(parts, ", ") .. "}\n")
end
