"""`grpc-interop probe`: schema-driven calls to a running server from every client flavour, checked
side by side (docs/probe.md). Sits beside run/fuzz: nothing below imports it."""
