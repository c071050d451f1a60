-- wrk script of bench/peer.sh: replays one fixed request sequence for wrk's duration.
--
--   wrk -t 1 -c C -d 20s -s mix.lua BASE_URL -- SEQUENCE_FILE COOKIES_FILE
--
-- SEQUENCE_FILE has one request a line, `read N` (GET /session), `write N` (GET /counter)
-- or `health N` (GET /health), N being a session number: the 1-based line of COOKIES_FILE,
-- whose lines are `name=value` cookies. Requests go out in file order, wrapping around, so
-- both apps get the same requests in the same order, for as long as each keeps up. The
-- summary is printed as one JSON line starting with `PEER_RESULT `.
--
-- Run with one thread (-t 1): each thread would replay the sequence from its start.

local ROUTES = { read = "/session", write = "/counter", health = "/health" }

local sequence = {}
local next_index = 1

local function lines(path)
  local found = {}
  for line in io.lines(path) do
    if line ~= "" then
      found[#found + 1] = line
    end
  end
  return found
end

function init(args)
  local base = wrk.path:gsub("/$", "")
  local cookies = lines(args[2])
  for _, line in ipairs(lines(args[1])) do
    local kind, session = line:match("^(%a+) (%d+)$")
    local cookie = cookies[tonumber(session)]
    if not ROUTES[kind] or not cookie then
      error("bad sequence line: " .. line)
    end
    sequence[#sequence + 1] = wrk.format("GET", base .. ROUTES[kind], { Cookie = cookie })
  end
end

function request()
  local req = sequence[next_index]
  next_index = next_index % #sequence + 1
  return req
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'PEER_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"mean_us": %.1f, "max_us": %d, "non_2xx_3xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
