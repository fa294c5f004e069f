-- wrk script: POST a different signed WooCommerce body each request (a repeat would be
-- answered "duplicate" and cost the relay less than a real event).
-- Arguments: <file of "signature<TAB>body" lines> [delay in ms between a connection's
-- requests] [close | keepalive]
--   close      each webhook on its own connection, as platforms send webhooks
--              (WooCommerce opens one per delivery): the default
--   keepalive  one connection carries request after request, as a buffering proxy in
--              front of the relay sends them
local sigs, bodies, n, pause, close = {}, {}, 0, 0, true

function init(args)
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%S+)\t(.*)$")
    sigs[#sigs + 1] = sig
    bodies[#bodies + 1] = body
  end
  pause = tonumber(args[2] or "0")
  close = (args[3] or "close") ~= "keepalive"
end

function request()
  n = n + 1
  local k = ((n - 1) % #bodies) + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-WC-Webhook-Topic"] = "order.created",
    ["X-WC-Webhook-Signature"] = sigs[k],
  }
  if close then
    headers["Connection"] = "close"
  end
  return wrk.format("POST", nil, headers, bodies[k])
end

function delay()
  return pause
end
