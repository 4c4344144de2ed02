-- wrk: each request asks for one of the bench's small files at random.
math.randomseed(os.time())
local count = tonumber(os.getenv("LAIO_BENCH_FILES") or "1000")
request = function()
  return wrk.format("GET", string.format("/files/%d.html", math.random(0, count - 1)))
end
