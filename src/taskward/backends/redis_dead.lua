-- dead_letters: prelude (no caller), then the dead-letter store in death order.
-- Keys touched (P = KEYS[1]): the prelude's (P.."leases", P.."s", P.."r",
--   P.."dead", queues, P.."u", P.."meta" swept/cur), then P.."dead" and P.."r"
--   (read).
-- Returns {ids, reason_codes}.
prelude()
local ids = redis.call('LRANGE', DEAD, 0, -1)
return {ids, hmget(REASON, ids)}
