"""HTTP emulators of Google APIs for tests and benchmarks (127.0.0.1 only)."""
