"""Benchmarks behind ``agentic-llm bench``; shared reporting lives in ``report``."""
