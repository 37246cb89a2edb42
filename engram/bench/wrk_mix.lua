-- wrk script: the remember:recall=1:4 mix of `engram bench http`, for a second opinion
-- from a C load generator. Usage (space "bench" preloaded by `engram bench http`):
--   wrk -t2 -c16 -d30s -s engram/bench/wrk_mix.lua http://127.0.0.1:7432
-- or, for another space (e.g. one made with `engram bench http --effects off --space bench-off`):
--   wrk -t2 -c16 -d30s -s engram/bench/wrk_mix.lua http://127.0.0.1:7432 -- bench-off
-- and the same-run baseline: wrk -t2 -c16 -d30s http://127.0.0.1:7432/health
-- Remember bodies and recall queries are built once per thread from random unit
-- vectors (768 numbers, 4 decimals); remembers repeat after 256, and dedup answers
-- repeats with the existing id.

local dim = 768
local pool = 256
local remembers = {}
local recalls = {}
local counter = 0

local function vector()
  local v, norm = {}, 0
  for i = 1, dim do
    local x = math.random() * 2 - 1
    v[i] = x
    norm = norm + x * x
  end
  norm = math.sqrt(norm)
  local parts = {}
  for i = 1, dim do parts[i] = string.format("%.4f", v[i] / norm) end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  local space = args[1] or "bench"
  local headers = { ["Content-Type"] = "application/json", ["X-Memory-Space"] = space }
  for i = 1, pool do
    local body = string.format('{"content":"wrk memory %d %d","confidence":0.8,"embedding":%s}', i, math.random(1e9), vector())
    remembers[i] = wrk.format("POST", "/api/v1/memories/remember", headers, body)
    recalls[i] = wrk.format("GET", "/api/v1/memories/recall?max_results=10&threshold=0&embedding=" .. urlencode(vector()),
                            { ["X-Memory-Space"] = space })
  end
end

function request()
  counter = counter + 1
  local i = (counter % pool) + 1
  if counter % 5 == 0 then
    return remembers[i]
  end
  return recalls[i]
end

function done(summary, latency, requests)
  io.write(string.format("requests %d, errors (status) %d, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
