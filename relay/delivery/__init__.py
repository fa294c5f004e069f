"""The worker side: from stored events to Commerce API requests, with the entity rules,
retries and dead letters."""
