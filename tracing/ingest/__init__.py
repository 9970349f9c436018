"""OTLP/HTTP ingest: ``POST /v1/traces`` from any service, into the same store.

``app`` (the ASGI receiver: admission, body, status codes), ``decode`` (OTLP protobuf/JSON
bodies → the row builder's rows, responses), ``store`` (auth by ingest token, then the exporter's
write, committed before the answer).
"""
