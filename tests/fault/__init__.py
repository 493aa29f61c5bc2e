"""Fault-injection tests: real worker and web processes, private PostgreSQL, Redis, RabbitMQ."""
