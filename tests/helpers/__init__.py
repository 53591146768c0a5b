"""Test helpers: data makers and the CLI harness, shared by the test modules."""
