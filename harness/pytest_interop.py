"""The interop test the pytest plugin adds when `--interop-protos` is given and none of the
collected tests asks for `interop_run` (a user's repository with no conftest and no test file):
`pytest --interop-protos proto/` then runs every case in every direction, one test id each.
"""


def test_interop(interop_run):
    interop_run.assert_pass()
