"""`describe`: the one log line an unexpected exception becomes when the show goes on."""

from livevace.errors import UserError, describe


def test_a_message_whose_first_line_only_introduces_the_cause_keeps_the_cause():
    """torch.compile's failures read "backend='inductor' raised:" and then what went wrong."""
    err = RuntimeError("backend='inductor' raised:\n\nAssertionError: expected stride 1==9\n"
                       "\nSet TORCH_LOGS=+dynamo for more")
    assert describe(err) == ("RuntimeError: backend='inductor' raised: AssertionError: "
                             "expected stride 1==9")


def test_otherwise_the_type_and_first_line_and_a_users_error_whole():
    assert describe(ValueError("bad value\nmore detail")) == "ValueError: bad value"
    assert describe(KeyError()) == "KeyError"
    assert describe(ValueError("x" * 500)) == "ValueError: " + "x" * 200
    assert describe(UserError("line one\nline two")) == "line one\nline two"
