"""Counter booking (预约), tickets and front-desk check-in (签到 / 取号)."""
