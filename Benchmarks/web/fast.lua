-- wrk: the crowd regime's heavy fast load (Benchmarks/web/webbench.py): requests for the
-- cached files /fast/f00 ... /fast/fNN-1 in turn, NN from LAIO_WEB_FAST_FILES (64). At the end
-- one line starting with "LAIO-WEB " carries the figures as JSON, as specweb.lua's does.

local files = tonumber(os.getenv("LAIO_WEB_FAST_FILES") or "64")
local counter = 0
local next_file = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  next_file = ((id or 1) * 17) % files
end

request = function()
  local path = string.format("/fast/f%02d", next_file)
  next_file = (next_file + 1) % files
  return wrk.format("GET", path)
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
