-- wrk script: POST Segment batches to /v1/batch, as Segment's mobile SDKs send them (fresh messageId
-- and order_id in every message). Set by bench/segment.py through the environment: API_KEY, BATCH,
-- CONTEXT: full (what analytics-kotlin puts in every message) or minimal (app version, OS and library:
-- what the native benchmark's events carry). The mix is the classic profile's: 3 "Application
-- Installed" to 1 "Order Completed".

local api_key = os.getenv("API_KEY")
local batch = tonumber(os.getenv("BATCH") or "100")
local context_kind = os.getenv("CONTEXT") or "full"
local counter = 0
local thread_id = 0
local nonce = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("thread_id", thread_id)
end

function init(args)
  nonce = os.time() % 0xffffffff
  counter = 0
end

local full_context = '"context":{"app":{"name":"Space Raiders","version":"1.4.2","namespace":"com.example.raiders",' ..
  '"build":"142"},"device":{"id":"6f1c","manufacturer":"Google","model":"Pixel 8","name":"shiba","type":"android"},' ..
  '"library":{"name":"analytics-kotlin","version":"1.16.3"},"locale":"fr-FR","network":{"wifi":true},' ..
  '"os":{"name":"Android","version":"14"},"screen":{"density":2.625,"height":2400,"width":1080},' ..
  '"timezone":"Europe/Paris","userAgent":"Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A)"}'
local minimal_context = '"context":{"app":{"version":"1.4.2"},"os":{"name":"Android"},' ..
  '"library":{"name":"analytics-kotlin","version":"1.16.3"}}'
local context = context_kind == "minimal" and minimal_context or full_context

local function message(now)
  counter = counter + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", nonce, thread_id, counter)
  local common = string.format(
    '{"type":"track","messageId":"%s","anonymousId":"anon-%d","userId":"player-%d","timestamp":"%s",' ..
    '"integrations":{},', id, counter % 5000, counter % 5000, now)
  if counter % 4 == 0 then
    return common .. '"event":"Order Completed","properties":{"order_id":"GPA.' .. id .. '","revenue":4.99,' ..
      '"currency":"EUR","products":[{"product_id":"gem_pack_small","price":4.99,"quantity":1}]},' .. context .. '}'
  end
  return common .. '"event":"Application Installed","properties":{"version":"1.4.2","build":"142"},' ..
    context .. '}'
end

local headers = {
  ["Authorization"] = "Basic " .. (api_key or ""),  -- base64 of "<key>:", made by bench/segment.py
  ["Content-Type"] = "text/plain",
}

function request()
  local now = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
  local messages = {}
  for i = 1, batch do messages[i] = message(now) end
  local body = '{"batch":[' .. table.concat(messages, ",") .. '],"sentAt":"' .. now .. '"}'
  return wrk.format("POST", "/v1/batch", headers, body)
end
