-- wrk script: POST a CloudEvent to /receive with a fresh eventID on every request.
--
-- wrk ... -s bench/receive.lua URL/receive -- BODY_FILE RUN_TAG [IDS_PREFIX]
--   BODY_FILE   the event JSON with @EVENT_ID@ where its id goes
--   RUN_TAG     makes ids unique across runs: "<RUN_TAG>-<thread>-<counter, 8 digits>" (with a
--               10-character tag and under 10 threads, every id is 21 characters long)
--   IDS_PREFIX  if given, each thread appends the taskID of every 2xx answer to IDS_PREFIX.<thread>
-- At the end one line "BENCH_JSON {...}" holds requests, duration, latency percentiles,
-- socket errors and the count of each HTTP status.

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_number", thread_count)
   table.insert(threads, thread)
end

local head, tail, prefix, ids_file
local counter = 0
statuses = {}

function init(args)
   local handle = assert(io.open(args[1], "rb"))
   local template = handle:read("*a")
   handle:close()
   local at = string.find(template, "@EVENT_ID@", 1, true)
   assert(at, "the body has no @EVENT_ID@")
   head = string.sub(template, 1, at - 1)
   tail = string.sub(template, at + string.len("@EVENT_ID@"))
   prefix = args[2] .. "-" .. tostring(thread_number) .. "-"
   if args[3] ~= nil and args[3] ~= "" then
      ids_file = assert(io.open(args[3] .. "." .. tostring(thread_number), "w"))
      ids_file:setvbuf("line")
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   return wrk.format(nil, nil, nil, head .. prefix .. string.format("%08d", counter) .. tail)
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   if ids_file ~= nil and status >= 200 and status < 300 then
      local task = string.match(body, '"taskID":%s*"([%w%-]+)"')
      ids_file:write(task or "?", "\n")
   end
end

function done(summary, latency, requests)
   local merged = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      if counts ~= nil then
         for status, count in pairs(counts) do
            merged[status] = (merged[status] or 0) + count
         end
      end
   end
   local parts = {}
   for status, count in pairs(merged) do
      table.insert(parts, string.format('"%s": %d', status, count))
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
         .. '"p99_us": %d, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, '
         .. '"timeout": %d}, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, errors.connect, errors.read, errors.write,
      errors.timeout, table.concat(parts, ", ")))
end
