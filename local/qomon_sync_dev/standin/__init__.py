"""A local stand-in for the Qomon API: plays Qomon on 127.0.0.1 for tests and demos."""
