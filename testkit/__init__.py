"""Helpers shared by tests/ and benchmarks/ (not used by the service itself).

- testkit.pg: scratch PostgreSQL databases on the test server, created and dropped;
- testkit.server: the dse app served by uvicorn in a thread on a free loopback port;
- testkit.browser: how the real-browser tests and benchmarks launch Debian's chromium;
- testkit.api: the HTTP API in-process (a loopback client, studies created, trials finished);
- testkit.cli: the dse command line in-process (run, run_json, bad);
- testkit.specs: small study specs (the smoke spec, the API tests' spec, one slow to sample);
- testkit.nets: NetSpecs written by hand (stage-tuple shorthand, EfficientNet-B0);
- testkit.spaces: what the NDS presets hold;
- testkit.torch_counts: torch's own counts of a module (meta-device MACs; MACs and activations in one pass);
- testkit.synthetic: synthetic errors with known answers;
- testkit.settlers: racing settlers that finish each fidelity level of many studies at once
  (and in_threads: n calls at once, each in its own thread);
- testkit.fit_reference: the exhaustive RegNet fit the fit tests and benchmark compare with.
"""
