-- wrk: requests that follow a SPECweb99-like static mix.
--
-- The file set and its mix are made by Benchmarks/web/webbench.py, which writes the tables
-- this script reads (LAIO_WEB_MIX names that file): a class is picked 35/50/14/1 percent
-- (0.1-0.9 KB, 1-9 KB, 10-90 KB, 100-900 KB), then a directory and a file within the class,
-- each Zipf-distributed. The sequence is fixed by LAIO_WEB_SEED and the thread's number.
-- At the end one line starting with "LAIO-WEB " carries the figures as JSON.

local mix = dofile(os.getenv("LAIO_WEB_MIX"))
local seed = tonumber(os.getenv("LAIO_WEB_SEED") or "1")
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed * 7919 + (id or 0))
end

-- The first index i with cumulative[i] >= u (cumulative is increasing, ends at 1).
local function pick(cumulative, u)
  local low, high = 1, #cumulative
  while low < high do
    local middle = math.floor((low + high) / 2)
    if cumulative[middle] < u then low = middle + 1 else high = middle end
  end
  return low
end

request = function()
  local class = pick(mix.classes, math.random()) - 1
  local directory = pick(mix.directories, math.random()) - 1
  local file = pick(mix.files, math.random()) - 1
  return wrk.format("GET", string.format(mix.pattern, directory, class, file))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LAIO-WEB {"requests": %d, "bytes": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, '
    .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "latency_p50_us": %d, '
    .. '"latency_p90_us": %d, "latency_p99_us": %d, "latency_mean_us": %.1f, "latency_max_us": %d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
