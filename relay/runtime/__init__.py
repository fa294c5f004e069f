"""What runs and watches the processes: the supervisor, the embedded Redis, health
endpoints, metrics, logs and error reports."""
