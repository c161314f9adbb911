"""The HTTP layer: middleware, the native /v1 API and the vendor faces."""
