-- wrk script for scripts/bench. Sends the API key; with BENCH_MODE=create,
-- POSTs a new user (a unique email) per request. At the end prints one JSON
-- line: requests, successful ones, socket errors, answers of 400 and up,
-- successful requests per second, p50, p99.
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

-- Throughput counts only answers below 400: wrk's own "requests" includes
-- errors. (No load here can be answered 3xx: nothing sends If-None-Match.)
-- Counting each status in a response() callback would cost the load
-- generator more CPU than the service it shares the machine with.
function done(summary, latency, requests)
  local e = summary.errors
  -- wrk counts a request when its answer arrives; status errors are
  -- among them, socket errors and timeouts are not.
  local ok = summary.requests - e.status
  io.write(string.format(
    '{"requests":%d,"ok":%d,"socket_errors":%d,"non_2xx":%d,"rps":%.3f,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, ok, e.connect + e.read + e.write + e.timeout, e.status,
    ok / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
