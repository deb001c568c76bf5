-- wrk script for scripts/bench. Sends the API key; with BENCH_MODE=create,
-- POSTs a new user (a unique email) per request. At the end prints one JSON
-- line: requests, socket errors, non-2xx/3xx answers, throughput, p50, p99.
local key = os.getenv("BENCH_API_KEY")
local mode = os.getenv("BENCH_MODE") or "get"
local run = os.getenv("BENCH_RUN") or "0"
local counter = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_no", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. key
  if mode == "create" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if mode == "create" then
    counter = counter + 1
    local body = string.format(
      '{"name":"Bench user","email":"bench-%s-%d-%d@example.com","password":"Password@123"}',
      run, thread_no, counter)
    return wrk.format(nil, nil, nil, body)
  end
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"socket_errors":%d,"non_2xx":%d,"rps":%.3f,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
