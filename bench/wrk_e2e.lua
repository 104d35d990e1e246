-- wrk script of bench/end_to_end.py: POST fresh install events (a new event_id in every event).
-- Environment: API_KEY, BATCH (0 = POST /v1/events with one event; N = /v1/events/batch with N).
-- Prints one machine-readable line at the end: "E2E requests=... non2xx=... p50_ms=... p95_ms=... p99_ms=...".

local api_key = os.getenv("API_KEY")
local batch = tonumber(os.getenv("BATCH") or "0")
local threads = {}
local counter = 0
local thread_id = 0
local nonce = 0
non2xx = 0  -- a global: done() reads it from each thread

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + thread_id)
  nonce = math.random(0, 0x7fffffff)
  counter = 0
end

local function event()
  counter = counter + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", nonce, thread_id, counter)
  return string.format(
    '{"event_id":"%s","event_type":"install","player_id":"player-%d","occurred_at":"%s",' ..
    '"platform":"ios","app_version":"1.4.2","properties":{"store":"app_store","campaign":"summer",' ..
    '"country":"FR","device_model":"iPhone15,2","os_version":"18.1"}}',
    id, counter % 50000, os.date("!%Y-%m-%dT%H:%M:%SZ"))
end

function request()
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. api_key}
  if batch == 0 then
    return wrk.format("POST", "/v1/events", headers, event())
  end
  local events = {}
  for i = 1, batch do events[i] = event() end
  return wrk.format("POST", "/v1/events/batch", headers, '{"events":[' .. table.concat(events, ",") .. ']}')
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  io.write(string.format("E2E requests=%d non2xx=%d p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f\n",
    summary.requests, bad, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
