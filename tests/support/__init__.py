"""Helpers the tests share, one module per job: import each name from the module that
owns it (`databases`, `redis_servers`, `processes`, `mock_engine`, `instances`,
`faults`, `paths`)."""
