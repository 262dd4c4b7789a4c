"""Test doubles and fixtures that users may reuse in their own tests.

`scripted_server.ScriptedServer` is a real OpenAI-compatible server on loopback, with scripted
answers and injected faults, so code built on `prefpipe.llm` can be tested without a paid
endpoint. Shipped with the package (not under prefpipe_tests) for that reason.
"""
