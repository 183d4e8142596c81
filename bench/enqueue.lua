-- wrk script of bench/enqueue.py.
-- Every request POSTs a delayed job in a task of its own,
-- `<prefix>-<thread>-<n>` (or, with `tasks_per_thread` > 0, in task `<prefix>-<thread>-<n mod that>`); the jobUrl of every 200 goes to `<dir>/urls-<thread>`, any other answer to
-- `<dir>/errors-post-<thread>`; done() writes how many requests each thread sent to `<dir>/sent`, so that jobs
-- whose answer wrk never read (in flight when it stopped) can still be found and stopped.
-- Arguments (after --): prefix dir body_file tasks_per_thread

local threads = {}
local thread_no = 0

function setup(thread)
   thread_no = thread_no + 1
   thread:set("id", thread_no)
   table.insert(threads, thread)
end

function init(args)
   prefix, dir, tasks_per_thread = args[1], args[2], tonumber(args[4])
   sent = 0
   wrk.headers["Content-Type"] = "application/json"
   local f = assert(io.open(args[3], "rb"))
   body = f:read("*a")
   f:close()
   urls = assert(io.open(dir .. "/urls-" .. id, "w"))
   urls:setvbuf("no")
   errors = assert(io.open(dir .. "/errors-" .. id, "w"))
   errors:setvbuf("no")
end

function request()
   sent = sent + 1
   local n = sent
   if tasks_per_thread > 0 then
      n = sent % tasks_per_thread + 1
   end
   return wrk.format("POST", "/tasks/" .. prefix .. "-" .. id .. "-" .. n, nil, body)
end

function response(status, headers, body)
   if status == 200 then
      urls:write(body:match('"jobUrl":"([^"]+)"') or "?", "\n")
   else
      errors:write(status, " ", (body:sub(1, 300):gsub("\n", " ")), "\n")
   end
end

function done(summary, latency, requests)
   -- done() runs in wrk's main script state: what init() set lives in the threads' states
   local out = assert(io.open(threads[1]:get("dir") .. "/sent", "w"))
   for _, thread in ipairs(threads) do
      out:write(thread:get("id"), " ", thread:get("sent"), "\n")
   end
   out:close()
   -- One line the bench parses: requests, errors and the latency percentiles of answered requests (us).
   local p = {}
   for _, q in ipairs({ 50, 90, 99, 99.9 }) do
      table.insert(p, latency:percentile(q))
   end
   io.write(string.format(
      "BENCH %d %d %d %d %d %d %d %d\n",
      summary.requests, summary.duration, summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout, summary.errors.status, p[1], p[2], p[3], p[4]
   ))
end
