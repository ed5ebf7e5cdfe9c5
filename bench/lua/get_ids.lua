-- GET one record by id, cycling through a list of ids.
--
--   wrk ... -s bench/lua/get_ids.lua http://127.0.0.1:PORT/api/collections/posts/records -- IDS_FILE
--
-- IDS_FILE holds one record id per line. Each request is GET <URL path>/<id>,
-- the next id each time (round robin). The requests are formatted once, in
-- init(), so the per-request cost on wrk's side is a table lookup.
local reqs, n, i = {}, 0, 0

function init(args)
  local file = args[1]
  assert(file, "usage: wrk ... -s get_ids.lua URL -- IDS_FILE")
  local base = wrk.path:gsub("/+$", "")
  local f = assert(io.open(file, "r"))
  for line in f:lines() do
    local id = line:match("^%s*(%S+)%s*$")
    if id then
      n = n + 1
      reqs[n] = wrk.format("GET", base .. "/" .. id)
    end
  end
  f:close()
  assert(n > 0, "no ids in " .. file)
end

function request()
  i = i % n + 1
  return reqs[i]
end
