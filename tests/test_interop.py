"""The real cross-language runs: every case of the proto set in every direction.

Parametrized by the grpc_interop plugin (harness/pytest_plugin.py): one test per direction × case.
"""


def test_interop(interop_run):
    interop_run.assert_pass()
