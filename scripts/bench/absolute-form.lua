-- wrk script for scripts/bench-forward.sh: absolute-form request lines, what a client configured
-- to use a forward proxy sends ("GET http://host:port/path HTTP/1.1"). wrk connects to the proxy
-- given as its URL and sends the URL after "--" as the request target, with that URL's authority
-- as the Host header:
--   wrk -s absolute-form.lua http://127.0.0.1:PROXY_PORT/ -- http://127.0.0.1:ORIGIN_PORT/index.html
-- wrk builds the request after init() returns (wrk.format()), so it is built once per thread.
function init(args)
   local url = args[1]
   if url == nil or not url:match("^http://[^/]+/") then
      error("absolute-form.lua: pass the target URL after --, e.g. -- http://127.0.0.1:8080/index.html")
   end
   wrk.path = url
   wrk.headers["Host"] = url:match("^http://([^/]+)/")
end
