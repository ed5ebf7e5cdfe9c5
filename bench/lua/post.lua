-- POST a JSON record (create), the same body every time.
--
--   wrk ... -s bench/lua/post.lua http://127.0.0.1:PORT/api/collections/posts/records
--
-- The body has the shape of the records the `records` suite seeds: a short
-- title, a 200-character body and a number.
local text = string.rep("lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 4)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"title":"wrk post","body":"%s","views":42}', text:sub(1, 200))
