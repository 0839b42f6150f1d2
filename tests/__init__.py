"""The test suite (a package: a dependency of volttron-testing installs a top-level ``tests`` package into
site-packages, which would otherwise shadow this directory and break ``tests.support`` imports)."""
