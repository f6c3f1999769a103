import pytest

from bastion import errors


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (errors.AuthError, 401),
        (errors.Forbidden, 403),
        (errors.InvalidInput, 400),
        (errors.PayloadTooLarge, 413),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.BackendError, 503),
        (errors.IntegrityError, 500),
    ],
)
def test_every_error_has_a_status_code_and_message(kind, status):
    """Each error type carries an HTTP status, a stable code and a safe default message."""
    error = kind()
    assert isinstance(error, errors.BastionError)
    assert error.http_status == status
    assert error.code
    assert str(error) == error.public_message


def test_detail_stays_out_of_the_message():
    """Internal detail is kept apart from the public message."""
    error = errors.AuthError(detail="expired")
    assert "expired" not in str(error)
    assert error.detail == "expired"


def test_caller_mistakes_are_also_value_errors():
    """InvalidInput and ConfigError can be caught as ValueError (STYLE E6)."""
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.ConfigError, ValueError)


def test_rate_limited_carries_retry_after():
    """A rate-limit refusal says when to retry."""
    assert errors.RateLimited(retry_after=1.5).retry_after == 1.5
