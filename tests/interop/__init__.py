"""Interoperability: the end-to-end suite against mosquitto, NATS and RabbitMQ."""
