-- HTTP pipelining: each write carries `depth` requests (default 16), the
-- shape of the TechEmpower plaintext test. wrk counts every response.
init = function(args)
  local depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do batch[i] = wrk.format(nil) end
  pipelined = table.concat(batch)
end

request = function()
  return pipelined
end
