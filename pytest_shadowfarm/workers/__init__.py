"""Where workers come from and how long they stay healthy (memory ceiling, health monitor)."""
