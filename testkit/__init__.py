"""Helpers shared by tests/ and benchmarks/ (not used by the service itself).

- testkit.pg: scratch PostgreSQL databases on the test server, created and dropped;
- testkit.server: the dse app served by uvicorn in a thread on a free loopback port;
- testkit.browser: how the real-browser tests and benchmarks launch Debian's chromium.
- testkit.specs: the tiny smoke spec the store tests and benchmarks share.
- testkit.fit_reference: the exhaustive RegNet fit the fit tests and benchmark compare with.
"""
