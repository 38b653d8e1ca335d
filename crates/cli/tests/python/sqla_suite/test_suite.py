"""SQLAlchemy's dialect compliance suite, as shipped in the installed package."""

from sqlalchemy.testing.suite import *  # noqa: F401,F403
