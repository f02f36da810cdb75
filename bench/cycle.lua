-- wrk script: cycle through a list of request paths, one per line in a file.
--
--   wrk ... -s bench/cycle.lua URL -- PATHS_FILE [NONCE]
--
-- With NONCE, each request gets a query string no other request of the run
-- has (?r=NONCE-THREAD-N), so no server can answer it from a cache or share it
-- with a concurrent request: every request is a miss. Each thread starts at a
-- different place in the list. `done` prints one JSON line for bench/load.py.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

local paths = {}
local nonce = nil
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(paths, line)
    end
  end
  nonce = args[2]
  counter = (id - 1) * 7
end

function request()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  if nonce then
    path = path .. "?r=" .. nonce .. "-" .. id .. "-" .. counter
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
