-- wrk script: POST fresh events (new event_id and transaction_id in every request).
-- Set by bench/ingest.py through the environment: API_KEY, BATCH (0 = single-event endpoint),
-- PROFILE: classic (3 installs to 1 purchase), mixed (the simulator's session mix of built-in
-- types) or custom (a level_up custom event of 10 properties, checked against its schema).

local api_key = os.getenv("API_KEY")
local batch = tonumber(os.getenv("BATCH") or "0")
local profile = os.getenv("PROFILE") or "classic"
local threads = {}
local counter = 0
local thread_id = 0
local nonce = 0

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  nonce = os.time() % 0xffffffff
  counter = 0
end

local function common(id, event_type, now)
  return string.format(
    '{"event_id":"%s","event_type":"%s","player_id":"player-%d","occurred_at":"%s",' ..
    '"platform":"android","app_version":"1.4.2","session_id":"s-%d",',
    id, event_type, counter % 5000, now, counter % 997)
end

-- One play session's events, in order, as the simulator sends them.
local session = {
  function(id, now) return common(id, "session_start", now) .. '"properties":{}}' end,
  function(id, now) return common(id, "progression", now) ..
    '"properties":{"status":"start","level":"world1:level3","attempt":1}}' end,
  function(id, now) return common(id, "resource", now) ..
    '"properties":{"flow":"source","resource":"gems","amount":"25","item_type":"reward","item_id":"chest_1"}}' end,
  function(id, now) return common(id, "progression", now) ..
    '"properties":{"status":"complete","level":"world1:level3","score":4200,"attempt":1}}' end,
  function(id, now) return common(id, "resource", now) ..
    '"properties":{"flow":"sink","resource":"gems","amount":"10","item_type":"boost","item_id":"speed"}}' end,
  function(id, now) return common(id, "ad_impression", now) ..
    '"properties":{"ad_network":"admob","ad_format":"rewarded","ad_unit":"level_end","revenue":"0.0123",' ..
    '"currency":"USD"}}' end,
  function(id, now) return common(id, "purchase", now) ..
    '"properties":{"transaction_id":"GPA.' .. id .. '","product_id":"gem_pack_small","price":"4.99",' ..
    '"currency":"EUR","store":"google_play"}}' end,
  function(id, now) return common(id, "session_end", now) .. '"properties":{"duration_ms":754000}}' end,
}

local function custom(id, now)
  return common(id, "level_up", now) ..
    '"properties":{"level":12,"hero":"ayla","class":"mage","xp":48210,"gold":1200,"zone":"frost_peaks",' ..
    '"party_size":3,"hardcore":false,"duration_s":312.5,"difficulty":"normal"}}'
end

local function event()
  counter = counter + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", nonce, thread_id, counter)
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  if profile == "mixed" then
    return session[(counter - 1) % #session + 1](id, now)
  elseif profile == "custom" then
    return custom(id, now)
  end
  if counter % 4 == 0 then
    return string.format(
      '{"event_id":"%s","event_type":"purchase","player_id":"player-%d","occurred_at":"%s",' ..
      '"platform":"android","app_version":"1.4.2","session_id":"s-%d",' ..
      '"properties":{"transaction_id":"GPA.%s","product_id":"gem_pack_small","price":"4.99",' ..
      '"currency":"EUR","store":"google_play"}}',
      id, counter % 5000, now, counter % 997, id)
  end
  return string.format(
    '{"event_id":"%s","event_type":"install","player_id":"player-%d","occurred_at":"%s",' ..
    '"platform":"ios","app_version":"1.4.2","properties":{"store":"app_store","campaign":"summer",' ..
    '"country":"FR","device_model":"iPhone15,2","os_version":"18.1"}}',
    id, counter % 5000, now)
end

local headers = {
  ["Authorization"] = "Bearer " .. (api_key or ""),
  ["Content-Type"] = "application/json",
}

function request()
  if batch == 0 then
    return wrk.format("POST", "/v1/events", headers, event())
  end
  local events = {}
  for i = 1, batch do events[i] = event() end
  local body = '{"sent_at":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '","events":[' .. table.concat(events, ",") .. ']}'
  return wrk.format("POST", "/v1/events/batch", headers, body)
end

local bad = 0
function response(status, headers, body)
  if status >= 300 then bad = bad + 1 end
end
