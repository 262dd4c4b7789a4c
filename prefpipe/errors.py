"""PrefpipeError: the base of every error a user can cause (a bad input file, a wrong setting, an
unreachable endpoint). Its message names the file, line and field where the input is at fault.
Assets turn it into a `dg.Failure` whose description is that message, and `prefpipe run` prints
the message alone; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class PrefpipeError(Exception):
    """An error the user can fix; str(error) says what and where."""
