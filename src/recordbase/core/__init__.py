"""The sans-IO domain of recordbase: types, records, validation, queries and the service."""
