"""Reference connectors for the conformance kit's own tests, each with switches that break one
behaviour, so the tests can show every conformance check fails when it should."""
