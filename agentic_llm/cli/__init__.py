"""The ``agentic-llm`` command line."""
