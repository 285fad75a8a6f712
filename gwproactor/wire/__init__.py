"""The wire: names and topics, the message envelope and the codecs that turn messages into
MQTT payloads and back. The first stage a received message passes after its link."""
