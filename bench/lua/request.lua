-- One wrk script for every scenario; the bench passes what to send through the environment.
--   BENCH_METHOD   GET | POST | PUT
--   BENCH_BODY     path of a file holding the request body (optional)
--   BENCH_PATHS    path of a file with one request path per line, used in turn (optional;
--                  else the URL's path)
--   BENCH_AUTH     "Bearer <token>" (optional)
--   BENCH_UPSERT   when set, the body's "@EXT@" becomes a random external id 1..N (N = value)
-- done() prints one line "BENCHJSON {...}" with counts and latency percentiles (ms).

local method = os.getenv("BENCH_METHOD") or "GET"
local body = nil
local paths = {}
local auth = os.getenv("BENCH_AUTH")
local upsert = tonumber(os.getenv("BENCH_UPSERT") or "")
local counter = 0

local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local body_file = os.getenv("BENCH_BODY")
if body_file and body_file ~= "" then body = slurp(body_file) end
local paths_file = os.getenv("BENCH_PATHS")
if paths_file and paths_file ~= "" then
  for line in io.lines(paths_file) do
    if line ~= "" then paths[#paths + 1] = line end
  end
end

local headers = {["Content-Type"] = "application/json"}
if auth and auth ~= "" then headers["Authorization"] = auth end

function init(args)
  math.randomseed(os.time())
end

function request()
  local path = nil
  if #paths > 0 then
    counter = counter + 1
    path = paths[(counter % #paths) + 1]
  end
  local b = body
  if upsert and b then
    b = string.gsub(b, "@EXT@", "ext-" .. math.random(1, upsert))
  end
  return wrk.format(method, path, headers, b)
end

local statuses = {}
function response(status, hdrs, resp_body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for code, n in pairs(statuses) do parts[#parts + 1] = string.format('"%d": %d', code, n) end
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
