from flask_wtf import FlaskForm
from wtforms import HiddenField


class RetryForm(FlaskForm):
    """Only the CSRF token, and where to go back to."""

    next = HiddenField()
