"""HTTP emulators of the Google APIs the product talks to, for tests and benchmarks.

Each listens on 127.0.0.1 only and answers like Google (paths, paging, partial
responses, error JSON), so the real client libraries are exercised over HTTP.
"""
