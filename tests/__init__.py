"""The test suite (a package, so `tests.support` is ours and not a dependency's top-level `tests`)."""
