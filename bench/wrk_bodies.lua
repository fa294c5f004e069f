-- wrk script: POST a different signed WooCommerce body each request (a repeat would be
-- answered "duplicate" and cost the relay less than a real event), each on its own
-- connection, as platforms send webhooks (WooCommerce opens one per delivery).
-- Arguments: <file of "signature<TAB>body" lines> [delay in ms between a connection's requests]
local sigs, bodies, n, pause = {}, {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%S+)\t(.*)$")
    sigs[#sigs + 1] = sig
    bodies[#bodies + 1] = body
  end
  pause = tonumber(args[2] or "0")
end

function request()
  n = n + 1
  local k = ((n - 1) % #bodies) + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-WC-Webhook-Topic"] = "order.created",
    ["Connection"] = "close",
    ["X-WC-Webhook-Signature"] = sigs[k],
  }, bodies[k])
end

function delay()
  return pause
end
