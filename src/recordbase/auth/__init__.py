"""API keys: secrets, their hashes and the parsing of credentials from requests."""
