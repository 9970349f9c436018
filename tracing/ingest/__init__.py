"""OTLP/HTTP ingest: ``POST /v1/traces`` from any service, into the same store.

``app`` (the ASGI receiver: admission, body, status codes), ``decode`` (OTLP protobuf/JSON
bodies → SDK span objects, responses), ``store`` (auth by ingest token, then the exporter's
row builder and write, committed before the answer).
"""
